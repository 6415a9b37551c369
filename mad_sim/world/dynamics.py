"""Agent kinematics: the bicycle model in (acceleration, curvature), the delta
model in (dx, dy, dyaw), their exact inverses, and action limits.

All poses are in the world frame: ``xy`` in metres, ``heading`` in radians
(CCW from +x), ``speed`` in m/s (signed: negative means reversing along the
heading).  Every function broadcasts over leading dimensions ``[...]`` (agents,
batches) and is pure numpy.

Bicycle model (discretisation)
------------------------------
One step of length ``dt`` with constant acceleration ``a`` (m/s^2) and
curvature ``kappa`` (1/m, positive turns left):

    v'   = v + a dt
    yaw' = yaw + kappa v' dt
    p'   = p + v' dt [cos yaw', sin yaw']

i.e. semi-implicit ("symplectic") Euler: the agent first sets its new speed and
heading, then travels the distance ``v' dt`` along the new heading.  The
heading change equals curvature x distance travelled, so ``kappa`` keeps its
geometric meaning.  A constant ``(a=0, kappa)`` traces the vertices of a
regular polygon inscribed in a circle of radius ``s / (2 sin(kappa s / 2))``
(``s = v dt``), which is ``1/kappa`` to relative order ``(kappa s)^2 / 24``
(0.04 % at ``kappa = 0.1``, ``s = 1 m``).  The heading state is the direction
of travel over the *last* step, half a step behind the exact arc's tangent.

Why not the exact constant-(a, kappa) arc?  Its endpoint depends on both the
old and the new heading, so an inverse that hits every logged position
reflects the heading about each chord (``yaw' = 2 phi - yaw``) and noise in a
real log makes the recovered heading and curvature oscillate step to step.
With the semi-implicit step the state after each step is determined by the
step's displacement alone, so the inverse is exact and well behaved.

Inverse (expert actions from logs)
----------------------------------
:func:`bicycle_inverse` runs the forward model *in closed loop* against the
log: from its own simulated state it picks the action whose step lands on the
next logged position (new heading = direction of the displacement, new speed =
its length / dt, negative if the target lies behind).  Curvature is limited to
``max_curvature``: at walking pace and below, logged positions jitter by a few
centimetres and their direction is noise, and a bicycle cannot turn on the
spot; there the step travels the logged distance with the limited turn and the
small miss is corrected on the next step (it never accumulates).  Only the
first state's heading and speed come from the log (its headings and velocities
are otherwise not used, they are noisier than the positions).  Replaying the
returned actions with :func:`bicycle_rollout` from that first state repeats the
same floating-point operations, so it reproduces the inverse's states exactly.

Delta model
-----------
``delta_step`` moves a pose by ``(dx, dy)`` metres in its own frame (x forward,
y left) and turns it by ``dyaw`` radians; :func:`delta_inverse` is its exact
inverse.

Limits
------
:class:`BicycleLimits` / :class:`DeltaLimits` (:mod:`mad_sim.world.action_limits`,
re-exported here) clip actions and *report* which entries were clipped
(:class:`ClippedBicycle` / :class:`ClippedDelta`); the environment surfaces
these.  Non-finite actions raise :class:`~mad_sim.errors.ActionError`: NaN is
never clipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

from mad_sim.data.frames import wrap_angle
from mad_sim.data.scenario import DT, Trajectory
from mad_sim.errors import ShapeError
from mad_sim.world.action_limits import BicycleLimits, ClippedBicycle, ClippedDelta, DeltaLimits

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "BicycleLimits",
    "ClippedBicycle",
    "DeltaLimits",
    "ClippedDelta",
    "ExpertActions",
    "bicycle_step",
    "bicycle_rollout",
    "bicycle_inverse",
    "expert_actions",
    "delta_step",
    "delta_inverse",
    "delta_rollout",
    "speed_heading_from_positions",
]


# ----------------------------------------------------------------------------- bicycle
def bicycle_step(
    xy: npt.ArrayLike,
    heading: npt.ArrayLike,
    speed: npt.ArrayLike,
    accel: npt.ArrayLike,
    curvature: npt.ArrayLike,
    dt: float = DT,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One semi-implicit bicycle step (see the module docstring for the equations).

    Args:
      xy: [..., 2] m, world frame.  heading: [...] rad.  speed: [...] m/s (signed).
      accel: [...] m/s^2.  curvature: [...] 1/m.  dt: s.

    Returns:
      (xy [..., 2], heading [...] wrapped to (-pi, pi], speed [...]).  No
      limits are applied here; use :meth:`BicycleLimits.clip` first.
    """
    v = np.asarray(speed, dtype=np.float64) + np.asarray(accel, dtype=np.float64) * dt
    step = v * dt
    yaw = wrap_angle(np.asarray(heading, dtype=np.float64) + np.asarray(curvature, dtype=np.float64) * step)
    new_xy = np.asarray(xy, dtype=np.float64) + np.stack([step * np.cos(yaw), step * np.sin(yaw)], -1)
    return new_xy, yaw, v


def bicycle_rollout(
    xy: np.ndarray, heading: np.ndarray, speed: np.ndarray, accel: np.ndarray, curvature: np.ndarray, dt: float = DT
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate actions ``[..., S]`` from the initial state (``xy`` [..., 2], ``heading``/``speed`` [...]).

    Returns (xy [..., S+1, 2], heading [..., S+1], speed [..., S+1]); index 0 is the initial state.
    """
    accel = np.asarray(accel, dtype=np.float64)
    curvature = np.asarray(curvature, dtype=np.float64)
    steps = accel.shape[-1]
    out_xy = np.empty(accel.shape + (2,))
    out_xy = np.concatenate([np.asarray(xy, np.float64)[..., None, :], out_xy], -2)
    out_h = np.concatenate([np.asarray(heading, np.float64)[..., None], np.empty(accel.shape)], -1)
    out_v = np.concatenate([np.asarray(speed, np.float64)[..., None], np.empty(accel.shape)], -1)
    for t in range(steps):
        out_xy[..., t + 1, :], out_h[..., t + 1], out_v[..., t + 1] = bicycle_step(
            out_xy[..., t, :], out_h[..., t], out_v[..., t], accel[..., t], curvature[..., t], dt
        )
    return out_xy, out_h, out_v


def bicycle_inverse(
    xy: np.ndarray,
    heading: np.ndarray,
    speed: np.ndarray,
    dt: float = DT,
    max_curvature: float = 0.5,
    still_distance: float = 0.0,
) -> Tuple[np.ndarray, np.ndarray]:
    """Actions that make :func:`bicycle_step` follow the positions ``xy`` [..., T, 2].

    The model starts from ``(xy[..., 0, :], heading[..., 0], speed[..., 0])``
    and, in closed loop, steers each step onto the next logged position
    (module docstring).  ``heading`` / ``speed`` [..., T] after index 0 are
    not used.

    Args:
      xy: [..., T, 2] m, the positions to follow (finite).
      heading: [..., T] rad.  speed: [..., T] m/s.
      dt: s between positions.
      max_curvature: 1/m, bound on the recovered curvature (see above).
      still_distance: m; a step whose target is closer than this is taken as
        standing still (speed 0, no turn), so the centimetre jitter of a
        parked car's logged position does not become alternating
        forward/reverse accelerations.  The miss is at most this distance and
        is corrected as soon as the agent moves.

    Returns:
      (accel [..., T-1] m/s^2, curvature [..., T-1] 1/m).
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim < 2 or xy.shape[-1] != 2:
        raise ShapeError(f"xy must be [..., T, 2], got {xy.shape}")
    heading = np.asarray(heading, dtype=np.float64)
    speed = np.asarray(speed, dtype=np.float64)
    if heading.shape != xy.shape[:-1] or speed.shape != xy.shape[:-1]:
        raise ShapeError(f"heading {heading.shape} / speed {speed.shape} must be {xy.shape[:-1]}")
    steps = xy.shape[-2] - 1
    accel = np.zeros(xy.shape[:-2] + (max(steps, 0),))
    curv = np.zeros_like(accel)
    p, yaw, v = xy[..., 0, :], heading[..., 0], speed[..., 0]
    for t in range(steps):
        d = xy[..., t + 1, :] - p
        dist = np.hypot(d[..., 0], d[..., 1])
        along = d[..., 0] * np.cos(yaw) + d[..., 1] * np.sin(yaw)
        sign = np.where(along < 0.0, -1.0, 1.0)
        target_yaw = np.arctan2(d[..., 1], d[..., 0]) + np.where(sign < 0, np.pi, 0.0)
        dyaw = wrap_angle(target_yaw - yaw)
        moving = dist > max(still_distance, 0.0)
        s = np.where(moving, sign * dist, 0.0)  # signed distance travelled = v' dt
        k = np.where(moving, dyaw / np.where(moving, s, 1.0), 0.0)
        k = np.clip(k, -max_curvature, max_curvature)
        a = (s / dt - v) / dt
        accel[..., t], curv[..., t] = a, k
        p, yaw, v = bicycle_step(p, yaw, v, a, k, dt)
    return accel, curv


def speed_heading_from_positions(
    xy: np.ndarray, dt: float = DT, min_speed: float = 0.5, fallback_heading: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Central-difference speed [..., T] m/s and heading [..., T] rad of positions ``xy`` [..., T, 2].

    Logged headings come from box fits and logged velocities from a tracker;
    both are noisier than finite differences of positions when the agent moves.
    Where the estimated speed is below ``min_speed`` the direction of motion is
    noise, so the heading is taken from ``fallback_heading`` (e.g. the log's)
    if given, else held from the nearest faster step.  Speed is unsigned.
    """
    xy = np.asarray(xy, dtype=np.float64)
    vel = np.gradient(xy, dt, axis=-2) if xy.shape[-2] > 1 else np.zeros_like(xy)
    spd = np.hypot(vel[..., 0], vel[..., 1])
    hdg = np.arctan2(vel[..., 1], vel[..., 0])
    slow = spd < min_speed
    if fallback_heading is not None:
        hdg = np.where(slow, np.asarray(fallback_heading, dtype=np.float64), hdg)
    elif slow.any():
        flat_h = hdg.reshape(-1, hdg.shape[-1])
        flat_s = slow.reshape(-1, slow.shape[-1])
        idx = np.arange(flat_h.shape[-1])
        for r in np.flatnonzero(flat_s.any(-1)):  # rows with slow steps only; not a hot path
            fast = np.flatnonzero(~flat_s[r])
            if fast.size:
                nearest = fast[np.abs(idx[:, None] - fast[None, :]).argmin(-1)]
                flat_h[r] = flat_h[r, nearest]
        hdg = flat_h.reshape(hdg.shape)
    return spd, hdg


@dataclass
class ExpertActions:
    """Bicycle actions recovered from a logged :class:`Trajectory`.

    Attributes:
      accel: [N, S] m/s^2 for the steps ``t0 -> t0+1, ..., t0+S-1 -> t0+S``.
      curvature: [N, S] 1/m.
      valid: [N, S] bool, both ends of the step logged (gaps are bridged by
        linear interpolation for the closed-loop inverse, these steps are
        marked False).
      xy0: [N, 2] m, heading0: [N] rad, speed0: [N] m/s: the initial state
        the actions start from (feed it to :func:`bicycle_rollout`).
      t0: first step index in the log.
    """

    accel: np.ndarray
    curvature: np.ndarray
    valid: np.ndarray
    xy0: np.ndarray
    heading0: np.ndarray
    speed0: np.ndarray
    t0: int

    def rollout(self, dt: float = DT) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xy [N, S+1, 2], heading [N, S+1], speed [N, S+1]) reproduced by the forward model."""
        return bicycle_rollout(self.xy0, self.heading0, self.speed0, self.accel, self.curvature, dt)


def _fill_gaps(xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``xy`` [N, T, 2] over invalid steps (held constant beyond the ends)."""
    out = xy.copy()
    t = np.arange(xy.shape[1])
    for i in np.flatnonzero(valid.any(1) & ~valid.all(1)):  # only tracks with gaps
        ok = valid[i]
        for c in range(2):
            out[i, :, c] = np.interp(t, t[ok], xy[i, ok, c])
    out[~valid.any(1)] = 0.0
    return out


def expert_actions(
    tracks: Trajectory,
    t0: int = 0,
    t1: Optional[int] = None,
    dt: float = DT,
    max_curvature: float = 0.5,
    still_distance: float = 0.02,
) -> ExpertActions:
    """Bicycle actions of every track from step ``t0`` to ``t1`` (inclusive, default: the last).

    The initial heading is the log's at ``t0``; the initial speed is the
    logged velocity projected on that heading (signed).  A track first valid
    after ``t0`` starts standing at its first position with its first logged
    heading.  See
    :func:`bicycle_inverse` for the method.  The actions carry the log's
    position noise: acceleration is a second difference of positions, so 2 cm
    of jitter at 10 Hz is about 4 m/s^2 (measured rms 0.5-1.5 m/s^2 on the
    WOMD samples); smooth them downstream if a use needs smooth controls.
    """
    t1 = tracks.num_steps - 1 if t1 is None else int(t1)
    sl = slice(t0, t1 + 1)
    valid = tracks.valid[:, sl]
    xy = _fill_gaps(tracks.xy[:, sl].astype(np.float64), valid)
    # initial heading / speed: the log's at each track's first valid step in the window (a track that
    # appears later waits, standing, at its first position; the gap-bridging steps are marked invalid)
    first = np.where(valid.any(1), valid.argmax(1), 0) + t0
    rows = np.arange(tracks.num_objects)
    h0 = np.where(valid.any(1), tracks.heading[rows, first].astype(np.float64), 0.0)
    vel0 = tracks.velocity[rows, first].astype(np.float64)
    v0 = np.where(valid[:, 0], vel0[:, 0] * np.cos(h0) + vel0[:, 1] * np.sin(h0), 0.0)
    heading = np.repeat(h0[:, None], xy.shape[1], 1)
    speed = np.repeat(v0[:, None], xy.shape[1], 1)
    a, k = bicycle_inverse(xy, heading, speed, dt, max_curvature, still_distance)
    return ExpertActions(
        accel=a, curvature=k, valid=valid[:, :-1] & valid[:, 1:], xy0=xy[:, 0].copy(), heading0=h0, speed0=v0, t0=int(t0)
    )


# ----------------------------------------------------------------------------- delta
def delta_step(xy: npt.ArrayLike, heading: npt.ArrayLike, dxdydyaw: npt.ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """Move poses by ``(dx, dy)`` m in their own frame (x forward, y left) and turn by ``dyaw`` rad.

    ``p' = p + R(yaw) [dx, dy]``, ``yaw' = wrap(yaw + dyaw)``.  Shapes:
    ``xy`` [..., 2], ``heading`` [...], ``dxdydyaw`` [..., 3].
    """
    d = np.asarray(dxdydyaw, dtype=np.float64)
    yaw = np.asarray(heading, dtype=np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    new_xy = np.asarray(xy, dtype=np.float64) + np.stack([c * d[..., 0] - s * d[..., 1], s * d[..., 0] + c * d[..., 1]], -1)
    return new_xy, wrap_angle(yaw + d[..., 2])


def delta_inverse(xy: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`delta_step` along poses ``xy`` [..., T, 2], ``heading`` [..., T].

    Returns [..., T-1, 3]: each step's displacement in the frame of the pose it
    starts from, and its wrapped heading change.
    """
    xy = np.asarray(xy, dtype=np.float64)
    yaw = np.asarray(heading, dtype=np.float64)
    d = np.diff(xy, axis=-2)
    c, s = np.cos(yaw[..., :-1]), np.sin(yaw[..., :-1])
    dx = c * d[..., 0] + s * d[..., 1]
    dy = -s * d[..., 0] + c * d[..., 1]
    return np.stack([dx, dy, wrap_angle(np.diff(yaw, axis=-1))], -1)


def delta_rollout(xy: np.ndarray, heading: np.ndarray, deltas: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Apply ``deltas`` [..., S, 3] from ``xy`` [..., 2] / ``heading`` [...]; returns [..., S+1, 2], [..., S+1]."""
    deltas = np.asarray(deltas, dtype=np.float64)
    xs = [np.asarray(xy, np.float64)]
    hs = [np.asarray(heading, np.float64)]
    for t in range(deltas.shape[-2]):
        p, h = delta_step(xs[-1], hs[-1], deltas[..., t, :])
        xs.append(p)
        hs.append(h)
    return np.stack(xs, -2), np.stack(hs, -1)
