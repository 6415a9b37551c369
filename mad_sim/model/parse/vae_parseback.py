"""Parse-back through the VAE: can a candidate representation carry the agents and lanes the model must predict?

For a candidate *representation* (:class:`Representation`: frame size,
camera height / pitch / field of view, :class:`~mad_sim.render.draw.PoseStyle`)
and a candidate VAE (any ``frames -> frames`` round trip; the torch one is
:class:`~mad_sim.model.parse.vae_roundtrip.VaeRoundTrip`), on real scenes:

**Clips** (:func:`select_clips`).  Seats: the SDC and up to ``seats`` other
vehicles drawn from the scene's vehicles that are valid over a whole window
(:class:`Protocol`, generator seeded by ``seed`` and the scene's index).  A
clip is ``frames`` (17: the model's clip length, ``1 + 8k``) consecutive log
steps ``t0 .. t0 + 16`` plus the *anchor* step ``t0 - 1`` (the present the
model predicts from); up to ``clips_per_seat`` windows per seat, evenly
spaced over the seat's valid windows.

**Per clip** (:func:`measure_clip`): 1. render the log pose video from the
seat (clean frames); 2. round-trip it through the VAE; 3. parse both the
clean and the decoded frames with :class:`~mad_sim.model.parse.parser.PoseParser`
(the known camera: the seat's logged pose at every frame) under one of two
prior protocols; 4. compare with the log.

* ``prior="closed-loop"`` (default) copies :meth:`~mad_sim.model.agents.learned.LearnedAgents._parse`:
  the tracked set is the agents valid at the anchor, other than the seat,
  whose box centre projects into the image within ``view_range_m`` (60 m);
  frame ``j`` (step ``t0 + j``) is parsed with ``dt = (j + 1) * 0.1 s`` from
  the *anchored* prior (the anchor's logged position, the velocity estimated
  so far ``v_j = ((x_j - x_0) + v_0 dt) / ((j + 2) dt)``, the previous frame's
  heading); an agent the parser puts out of view leaves the tracked set for
  the rest of the clip.  Parser settings :class:`ParseConfig` defaults with
  ``detect`` (the closed loop's ``detect_entering``; on here, so vehicles that
  were not tracked can still be found).  Entering detections are per frame
  (the closed loop counts them and does not track them).
* ``prior="log"``: each frame separately, the prior is the log one step
  earlier (every agent valid then) with a uniform perturbation of
  ``+-pos_noise_m`` per axis and ``+-yaw_noise_deg``, parsed with
  :meth:`ParseConfig.narrow`.

In both the static scene's skeleton-coloured pixels (traffic-light poles,
:func:`~mad_sim.model.parse.results.background_mask`) are passed as
``background`` so they are not taken for entering agents (the closed loop
passes none: with ``detect_entering`` off it needs none); the same priors
(and perturbations) are used for the clean and the decoded frames.

**Scoring** (per frame: gated matching of detections to the vehicles
visible in the clean frame; per line pixel: kept or not within 1 px) is
:mod:`mad_sim.model.parse.vae_parseback_scoring`;
:mod:`mad_sim.model.parse.vae_parseback_report` summarises the samples into
bands, targets, the JSON report and the printed table.  Everything here is
numpy.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mad_sim.data.scenario import DT, ObjectType, Scenario
from mad_sim.errors import ConfigError
from mad_sim.model.parse.config import ParseConfig
from mad_sim.model.parse.parser import PoseParser
from mad_sim.model.parse.results import ParseResult, background_mask, lights_at
from mad_sim.model.parse.vae_parseback_scoring import (
    Samples,
    add_lanes,
    band_index,
    clip_truth,
    pixel_ground_range,
    score_frame,
)
from mad_sim.render.camera import Camera
from mad_sim.render.draw import PoseStyle
from mad_sim.render.pose import PoseRenderer
from mad_sim.world.state import AgentStates

log = logging.getLogger(__name__)

RoundTrip = Callable[[np.ndarray], np.ndarray]
"""``[F, H, W, 3] uint8 -> [F, H, W, 3] uint8``."""


@dataclass(frozen=True)
class Representation:
    """What the pose video looks like: frame size, camera on the seat's vehicle frame, drawing style.

    Attributes:
      width, height: pixels.
      hfov_deg: horizontal field of view, degrees.
      mount_height: camera height above the ground, metres.
      pitch_deg: downward tilt, degrees.
      style: :class:`PoseStyle` (line / dot widths, ranges, layers).
    """

    width: int = 128
    height: int = 128
    hfov_deg: float = 90.0
    mount_height: float = 1.6
    pitch_deg: float = 0.0
    style: PoseStyle = field(default_factory=PoseStyle)

    def camera(self) -> Camera:
        return Camera.default_front(
            self.width, self.height, hfov_deg=self.hfov_deg, mount_height=self.mount_height, pitch_deg=self.pitch_deg
        )

    def renderer(self) -> PoseRenderer:
        return PoseRenderer(camera=self.camera(), style=self.style)

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["style"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["style"].items()}
        return d


@dataclass(frozen=True)
class Protocol:
    """How clips are chosen, parsed and scored (see the module doc).

    Attributes:
      frames: frames per clip (``8k + 1``).
      seats: other vehicles' seats per scene besides the SDC.
      clips_per_seat: windows per seat.
      prior: ``"closed-loop"`` or ``"log"``.
      detect: look for entering agents.
      min_pixels: skeleton pixels for a vehicle to count as visible.
      gate_m, gate_frac: match gate ``gate_m + gate_frac * range`` (metres).
      view_range_m: the closed loop's tracking range.
      pos_noise_m, yaw_noise_deg: perturbation of the ``log`` prior.
      seed: seat choice and perturbations.
      max_clips: stop after this many clips (None: all).
    """

    frames: int = 17
    seats: int = 3
    clips_per_seat: int = 2
    prior: str = "closed-loop"
    detect: bool = True
    min_pixels: int = 6
    gate_m: float = 2.0
    gate_frac: float = 0.1
    view_range_m: float = 60.0
    pos_noise_m: float = 0.3
    yaw_noise_deg: float = 3.0
    seed: int = 0
    max_clips: int | None = None

    def __post_init__(self) -> None:
        if self.prior not in ("closed-loop", "log"):
            raise ConfigError(f"parse-back prior {self.prior!r}: choose 'closed-loop' or 'log'")
        if self.frames < 1 or self.seats < 0 or self.clips_per_seat < 1 or self.min_pixels < 1:
            raise ConfigError(
                f"parse-back protocol: frames={self.frames}, seats={self.seats}, clips_per_seat="
                f"{self.clips_per_seat}, min_pixels={self.min_pixels} must be positive (seats >= 0)"
            )

    def parse_config(self) -> ParseConfig:
        return ParseConfig(detect=self.detect) if self.prior == "closed-loop" else ParseConfig.narrow(detect=self.detect)


def select_clips(scenario: Scenario, protocol: Protocol, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``[(seat track index, t0)]``: the SDC's windows, then up to ``seats`` other vehicles' (module doc)."""
    tr, f = scenario.tracks, protocol.frames
    span = f + 1  # anchor + clip
    if tr.num_steps < span:
        return []
    v = tr.valid.astype(np.int64)
    c = np.concatenate([np.zeros((v.shape[0], 1), np.int64), np.cumsum(v, 1)], 1)
    full = (c[:, span:] - c[:, :-span]) == span  # [N, T - span + 1]: window starting (anchor) at s is all valid
    veh = scenario.object_types == ObjectType.VEHICLE
    others = np.flatnonzero(veh & full.any(1))
    others = others[others != scenario.sdc_index]
    seats = [int(scenario.sdc_index)] if full[scenario.sdc_index].any() else []
    seats += [int(i) for i in rng.permutation(others)[: protocol.seats]]
    out = []
    for s in seats:
        starts = np.flatnonzero(full[s])
        k = min(protocol.clips_per_seat, starts.size)
        pick = starts[np.unique(np.linspace(0, starts.size - 1, k).round().astype(int))]
        out += [(s, int(a) + 1) for a in pick]
    return out


def parse_clip(
    parser: PoseParser, frames: np.ndarray, scenario: Scenario, seat: int, t0: int, protocol: Protocol, rng: np.random.Generator
) -> list[tuple[np.ndarray, ParseResult, np.ndarray]]:
    """Parse ``frames`` (steps ``t0 ..``) under the protocol's prior; per frame ``(rows [K], result, alive [K])``."""
    tr, cam, renderer = scenario.tracks, parser.camera, parser.renderer
    steps = np.arange(t0, t0 + len(frames))
    w2v = renderer.viewpoint_transforms(tr, seat, steps, scenario.source)
    out = []
    bgs = [
        background_mask(renderer, w2v[j], scenario.roadmap, lt) if protocol.detect and lt is not None else None
        for j, lt in enumerate(lights_at(scenario, int(t)) for t in steps)
    ]
    if protocol.prior == "closed-loop":
        ta = t0 - 1
        a = renderer.viewpoint_transform(tr, seat, ta, scenario.source)
        cand = tr.valid[:, ta].copy()
        cand[seat] = False
        uv, depth = cam.project(tr.xyz[:, ta] @ a[:, :3].T + a[:, 3])
        with np.errstate(invalid="ignore"):
            rows = np.flatnonzero(cand & cam.in_image(uv) & (depth < protocol.view_range_m))
        p0 = tr.xyz[rows, ta].copy()
        x0, v0 = p0[:, :2].copy(), tr.velocity[rows, ta].copy()
        size, types = tr.size[rows, ta].copy(), scenario.object_types[rows]
        prior = AgentStates(p0, tr.heading[rows, ta].copy(), v0.copy(), size, np.ones(rows.size, bool), types)
        alive = np.ones(rows.size, bool)
        for j in range(len(frames)):
            res = parser.parse(frames[j], prior, w2v[j], dt=(j + 1) * DT, background=bgs[j])
            alive &= res.in_view
            vel = (res.xyz[:, :2] - x0 + v0 * DT) / ((j + 2) * DT)
            out.append((rows, res, alive.copy()))
            prior = AgentStates(p0, res.heading, vel, size, alive.copy(), types)
        return out
    pn, yn = protocol.pos_noise_m, np.radians(protocol.yaw_noise_deg)
    for j, t in enumerate(steps):
        valid = tr.valid[:, t - 1].copy()
        valid[seat] = False
        rows = np.flatnonzero(valid)
        xyz = tr.xyz[rows, t - 1].copy()
        xyz[:, :2] += rng.uniform(-pn, pn, (rows.size, 2))
        prior = AgentStates(
            xyz,
            tr.heading[rows, t - 1] + rng.uniform(-yn, yn, rows.size),
            tr.velocity[rows, t - 1].copy(),
            tr.size[rows, t - 1].copy(),
            np.ones(rows.size, bool),
            scenario.object_types[rows],
        )
        res = parser.parse(frames[j], prior, w2v[j], dt=DT, background=bgs[j])
        out.append((rows, res, res.in_view.copy()))
    return out


def measure_clip(
    parser: PoseParser,
    scenario: Scenario,
    seat: int,
    t0: int,
    protocol: Protocol,
    roundtrip: RoundTrip | None,
    clean_s: Samples,
    vae_s: Samples | None,
    ground_band: np.ndarray,
    seed: int,
) -> None:
    """Steps 1-4 of the module doc for one clip, into ``clean_s`` and (with a round trip) ``vae_s``."""
    r = parser.renderer
    clean = r.render_scenario(scenario, seat, t0, t0 + protocol.frames)
    truth = clip_truth(r, scenario, seat, t0, protocol.frames)
    sources = [(clean, clean_s)]
    if roundtrip is not None and vae_s is not None:
        sources.append((np.asarray(roundtrip(clean)), vae_s))
    for frames, s in sources:
        add_lanes(s, truth.kinds, truth.owned, frames, ground_band)
        parsed = parse_clip(parser, frames, scenario, seat, t0, protocol, np.random.default_rng(seed))
        for j, (rows, res, alive) in enumerate(parsed):
            score_frame(
                s,
                scenario,
                seat,
                t0 + j,
                truth.cam_xy[j],
                truth.pixels[j],
                rows,
                res,
                alive,
                protocol.min_pixels,
                protocol.gate_m,
                protocol.gate_frac,
            )


@dataclass
class ParsebackResult:
    """A :func:`measure` run: the clean frames' and (with a round trip) the decoded frames' samples, the clips
    (``{"scene", "source", "seat", "t0"}`` each) and the number of scenes."""

    clean: Samples
    vae: Samples | None
    clips: list[dict[str, object]]
    scenes: int


def measure(
    scenarios: Sequence[Scenario],
    rep: Representation,
    protocol: Protocol,
    roundtrip: RoundTrip | None = None,
    progress: bool = False,
) -> ParsebackResult:
    """Run the whole measurement (module doc) over ``scenarios`` with the VAE ``roundtrip`` (None: clean only)."""
    from tqdm.auto import tqdm

    renderer = rep.renderer()
    parser = PoseParser(renderer=renderer, config=protocol.parse_config())
    ground_band = band_index(pixel_ground_range(renderer.camera))
    jobs = []
    for i, sc in enumerate(scenarios):
        rng = np.random.default_rng([protocol.seed, i])
        jobs += [(i, sc, seat, t0) for seat, t0 in select_clips(sc, protocol, rng)]
    jobs = jobs[: protocol.max_clips] if protocol.max_clips is not None else jobs
    clean_s, vae_s = Samples(), (Samples() if roundtrip is not None else None)
    clips: list[dict[str, object]] = []
    for k, (_, sc, seat, t0) in enumerate(tqdm(jobs, desc="parse-back clips", disable=not progress)):
        measure_clip(parser, sc, seat, t0, protocol, roundtrip, clean_s, vae_s, ground_band, seed=protocol.seed + k)
        clips.append({"scene": sc.scenario_id, "source": sc.source, "seat": seat, "t0": t0})
    return ParsebackResult(clean_s, vae_s, clips, len(scenarios))


__all__ = ["ParsebackResult", "Protocol", "Representation", "RoundTrip", "measure", "measure_clip", "parse_clip", "select_clips"]
