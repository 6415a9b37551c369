"""The ``appearance`` stage's task config: its training knobs and the paired clips' geometry.

A module of its own so that :mod:`mad_sim.model.training.loop` can name it in
``TrainConfig.task`` (``Union[MotionTaskConfig, AppearanceTaskConfig]``) at
runtime, as :func:`typing.get_type_hints` needs, while
:mod:`mad_sim.model.training.appearance_train` (which imports the loop) keeps
its entry points.  It imports nothing from ``training`` but the clip spec, and
that only when :meth:`AppearanceTaskConfig.spec` is called (the clip module
pulls in OpenCV and the pose renderer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict

from mad_sim.errors import ConfigError

if TYPE_CHECKING:
    from mad_sim.model.training.appearance_clips import AppearanceClipSpec


@dataclass
class AppearanceTaskConfig:
    """The ``appearance:`` section: the stage's task knobs and the paired clips' geometry.

    Attributes:
      p_first: probability per batch that the clip's first RGB frame is given as reference.
      targeted_noise: corrupt pose-holding pose latent patches (paper recipe); False = ablation.
      targeted_noise_max: ``s ~ U(0, targeted_noise_max)`` mixing of noise into those patches.
      clips: :class:`~mad_sim.model.training.appearance_clips.AppearanceClipSpec` fields.
    """

    p_first: float = 0.5
    targeted_noise: bool = True
    targeted_noise_max: float = 0.3
    clips: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_first <= 1.0:
            raise ConfigError(f"appearance.p_first={self.p_first} must be in [0, 1]")
        if not 0.0 <= self.targeted_noise_max <= 1.0:
            raise ConfigError(f"appearance.targeted_noise_max={self.targeted_noise_max} must be in [0, 1]")

    def spec(self) -> AppearanceClipSpec:
        """The paired clips' geometry (``clips`` as an :class:`AppearanceClipSpec`; a bad field is a ConfigError)."""
        from mad_sim.model.training.appearance_clips import AppearanceClipSpec

        try:
            return AppearanceClipSpec(**self.clips)
        except TypeError as exc:
            raise ConfigError(f"appearance.clips: {exc}") from exc
