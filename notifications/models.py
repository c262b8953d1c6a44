"""What notifications are made of: standing webhook subscriptions, the events that happened,
each owed delivery of an event to a URL, and every try of a delivery."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class EventType(models.TextChoices):
    JOB_CREATED = "job.created"
    JOB_WAITING = "job.waiting"
    JOB_STARTED = "job.started"
    JOB_PROGRESS = "job.progress"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"
    TILE_FAILED = "tile.failed"
    DATAFILE_STORED = "datafile.stored"
    PING = "ping"  # a subscription's test: sent to it alone, whatever it asks for


class Subscription(models.Model):
    """A user's standing webhook: every event of the types it wants (all without a list) about the
    user's jobs and data files is delivered to `url`, signed with `secret`."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="webhook_subscriptions")
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list, blank=True, help_text="event types; empty for every type")
    secret = models.CharField(max_length=64, editable=False)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.owner} → {self.url}"

    def wants(self, event_type):
        return event_type == EventType.PING or not self.events or event_type in self.events


class Event(models.Model):
    """Something that happened to a user's job or data file, with the job's REST representation
    at that moment; its id orders the events."""

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=32, choices=EventType.choices)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey("jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    payload = models.JSONField()
    created = models.DateTimeField(default=timezone.now, db_index=True)
    # Whether webhooks were owed it: progress comes to the event streams more often than to them.
    for_webhooks = models.BooleanField(default=True)

    class Meta:
        indexes = [models.Index(fields=["job", "type", "id"], name="event_job_type")]

    def __str__(self):
        return f"{self.type} #{self.pk}"


class Delivery(models.Model):
    """One event owed to one URL. Deliveries with the same `order_key` (a destination and a job)
    go out in the order of their ids: one is sent only once none before it is pending."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # no try left
        CANCELED = "canceled"  # its subscription was disabled (410) or deleted

    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, null=True, blank=True,
                                     related_name="deliveries")
    url = models.CharField(max_length=2000)
    secret = models.CharField(max_length=64, blank=True, editable=False)  # a job's own webhooks'; else the subscription's
    order_key = models.CharField(max_length=80)
    body = models.JSONField(null=True, blank=True, help_text="what is sent, where not the event's payload "
                                                             "(an OGC API subscriber's callbacks)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    tries = models.PositiveIntegerField(default=0)
    next_try = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "next_try"], name="delivery_due"),
                   models.Index(fields=["order_key", "status", "id"], name="delivery_order"),
                   models.Index(fields=["created"], name="delivery_created")]

    def __str__(self):
        return f"{self.event} → {self.url}"


class Attempt(models.Model):
    """One try of a delivery: what the receiver answered and when the next try is."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started = models.DateTimeField()
    seconds = models.FloatField()
    status_code = models.IntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    answer = models.TextField(blank=True, help_text="the first 500 bytes of the answer")
    next_try = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
