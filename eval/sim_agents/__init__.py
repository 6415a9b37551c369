"""WOSAC-style sim-agent realism benchmark (installed as ``mad_sim.eval.sim_agents``).

Modules, lowest first: :mod:`.config` (the metric configuration),
:mod:`.kinematics`, :mod:`.interaction`, :mod:`.map_features` (the feature
definitions), :mod:`.rollout_set` (rollout arrays and their checks),
:mod:`.features` (features of a log and its rollouts), :mod:`.likelihood`
(histogram likelihoods, meta-metric), :mod:`.submission_io` (the
``SimAgentsChallengeSubmission`` proto), :mod:`.rollouts` (simulating agent
policies), :mod:`.probe` (the brake reaction probe), :mod:`.runner`
(streaming, sharding) and :mod:`.report` (tables, JSON, plots).
"""
