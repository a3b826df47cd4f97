"""What the scheduler leader runs, and how often: the installation's periodic work."""

from __future__ import annotations

from dropyard.cluster.leader import Duty
from dropyard.gateway.defender import Defender
from dropyard.jobs.queue import Jobs
from dropyard.settings import Settings

HOUR = 3600.0
FIVE_MINUTES = 300.0


def scheduler_duties(jobs: Jobs, defender: Defender, settings: Settings) -> list[Duty]:
    return [
        # Due times are whole minutes: a run starts within one loop of its time.
        Duty("schedule", settings.scheduler_loop_seconds, jobs.tick),
        Duty("sweep", settings.sweep_seconds, jobs.sweep),
        Duty("lock_actions", FIVE_MINUTES, jobs.lock_actions),
        Duty("expire", HOUR, jobs.expire),
        Duty("forget_old_bans", HOUR, defender.prune),
    ]
