"""The scheduler's, the quotas' and the clusters' own rows: job priorities, users' shares, limits
and daily usage, the runner slots, and the clusters' heartbeats."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone


class Priority(models.IntegerChoices):
    """Which jobs the scheduler serves first: all of a higher priority's before any of a lower one's.
    Only staff may ask for high."""

    LOW = 0, "low"
    NORMAL = 1, "normal"
    HIGH = 2, "high"

    @classmethod
    def by_name(cls):
        return {member.label: member for member in cls}


class Share(models.Model):
    """A user's place in the scheduler at one priority (jobs.scheduling). `served` is the worker time
    the user has had, counted from where the other users stood when the user last became runnable, so
    that the user served least goes first; it is the same on all of a user's rows. `runnable` says
    that the user may have jobs of this priority with tiles to claim: set in the transaction that
    gives a job work, cleared by the scheduler when it finds none."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shares")
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    served = models.FloatField(default=0.0, help_text="worker seconds, on the scheduler's clock")
    runnable = models.BooleanField(default=False)
    since = models.DateTimeField(default=timezone.now, help_text="when it last became runnable")
    version = models.PositiveIntegerField(default=0, help_text="counts the times it was made runnable")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "priority"], name="share_unique_user_priority")]
        indexes = [models.Index(fields=["-priority", "served", "since", "user"], name="share_runnable_idx",
                                condition=models.Q(runnable=True))]

    def __str__(self):
        return f"{self.user} at {self.get_priority_display()} priority"


class UserLimits(models.Model):
    """Limits of one user that differ from the site's settings; an empty field keeps the setting."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="limits")
    max_running_tiles = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="tiles of the user's jobs that may run at once (the user's share of the cluster's workers); "
                  "empty: JOBSITE_MAX_RUNNING_TILES_PER_USER")
    pixels_per_day = models.BigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="pixels the user's jobs may process per day (UTC), counted at submit and resume; "
                  "empty: JOBSITE_PIXELS_PER_DAY")
    cpu_seconds_per_day = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="CPU seconds the user's jobs may use per day (UTC): a submit is refused once they have; "
                  "empty: JOBSITE_CPU_SECONDS_PER_DAY")
    job_storage_bytes = models.BigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="what the user's jobs may store, outputs and interim results; empty: JOBSITE_JOB_STORAGE_QUOTA_BYTES")

    class Meta:
        verbose_name_plural = "user limits"

    def __str__(self):
        return f"limits of {self.user}"


class DailyUsage(models.Model):
    """What a user's jobs used on one day (UTC), kept when the jobs are deleted: the quotas' ledger
    (jobs.services.quotas). Pixels count when a job is submitted or resumed (those it will process),
    CPU seconds as its tiles and its merge are done."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_usage")
    day = models.DateField()
    jobs = models.PositiveIntegerField(default=0, help_text="jobs submitted or resumed")
    pixels = models.BigIntegerField(default=0)
    cpu_seconds = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="dailyusage_unique_user_day")]
        ordering = ["-day", "user"]
        verbose_name_plural = "daily usage"

    def __str__(self):
        return f"{self.user} on {self.day}"


class Runner(models.Model):
    """One place for a tile task on the broker (jobs.runners): as many as the clusters have
    workers, so that the tasks in flight follow the workers, not the jobs. A runner holds its slot
    under a lease while it claims tiles of any job, and gives it up when none is left."""

    slot = models.PositiveSmallIntegerField(primary_key=True)
    token = models.CharField(max_length=32, blank=True, help_text="names the task sent for it; empty when free")
    holder = models.CharField(max_length=128, blank=True, help_text="the worker running it; empty until it starts")
    lease_expires = models.DateTimeField(null=True, blank=True, help_text="free when empty or past")
    sent = models.DateTimeField(null=True, blank=True)
    sends = models.PositiveIntegerField(default=0, help_text="times its task was sent without starting")

    def __str__(self):
        return f"runner {self.slot}" + (f" on {self.holder}" if self.holder else "")


class ClusterHeartbeat(models.Model):
    """A running `qcluster`, as its guard loop last reported it (see jobs.broker)."""

    key = models.CharField(max_length=200, unique=True, help_text="the cluster's id")
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    workers = models.PositiveIntegerField(default=0, help_text="its worker processes")
    started = models.DateTimeField(default=timezone.now)
    seen = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self):
        return f"cluster on {self.host} ({self.pid}), seen {self.seen:%Y-%m-%d %H:%M:%S}"
