"""Delivering the owed webhooks, in the cluster: at least once, in order per destination and job,
with retries.

The deliveries are rows, so nothing owed is lost with a cluster: each cluster keeps a sender
process beside its workers (notifications.sender), which looks for due ones several times a
second and sends them, several destinations at once, each try with a time-out; no worker waits
for a receiver. A delivery is due when its next try has come
and no delivery before it with the same order key is pending. A 2xx answer delivers it; 410
Gone disables the subscription (or, for a job's own webhook, drops what it still owes that URL);
anything else (another status, a time-out, a refused connection, a URL now refused) tries again
after the next of JOBSITE_WEBHOOK_RETRY_SECONDS, and fails once none is left. Every try is an
Attempt row.
"""

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from jobsite import outbound

from .models import Attempt, Delivery, Event, Subscription

logger = logging.getLogger(__name__)

BATCH = 16


def _due(now):
    earlier = Delivery.objects.filter(order_key=OuterRef("order_key"), status=Delivery.Status.PENDING,
                                      id__lt=OuterRef("id"))
    return (Delivery.objects.filter(status=Delivery.Status.PENDING, next_try__lte=now)
            .filter(Q(subscription__isnull=True) | Q(subscription__active=True))
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now)).exclude(Exists(earlier)))


def deliver(seconds=30, stop=None):
    """Send what is due, a batch at a time, until nothing is, `seconds` have passed or `stop` (a
    threading.Event) is set; each answer is recorded as it comes. How many were sent."""
    deadline = time.monotonic() + seconds
    sent = 0
    with ThreadPoolExecutor(max_workers=BATCH, thread_name_prefix="webhook") as pool:
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            claimed, lease = _claim(BATCH)
            if not claimed:
                break
            sent += len(claimed)
            sending = {pool.submit(_send, delivery): delivery for delivery in claimed}
            for done in as_completed(sending):
                try:
                    _record(sending[done], lease, *done.result())
                except Exception:  # one that cannot be recorded (its subscription just deleted) stops no other
                    logger.exception("webhook delivery %s could not be recorded", sending[done].pk)
    return sent


def _lease_seconds():
    """How long a claimed delivery is left alone by other senders: longer than a whole try (a
    sender killed while sending frees it after this)."""
    return settings.WEBHOOK_TIMEOUT_SECONDS + 10


def _claim(limit):
    """Up to `limit` due deliveries, one per order key, leased to this sender; and the lease, which
    recording a delivery's answer checks is still this sender's."""
    now = timezone.now()
    lease = now + timedelta(seconds=_lease_seconds())
    claimed = []
    for delivery_id in _due(now).order_by("id").values_list("id", flat=True)[:limit * 4]:
        if len(claimed) == limit:
            break
        won = Delivery.objects.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now), pk=delivery_id,
                                      status=Delivery.Status.PENDING).update(lease_until=lease)
        if won:
            claimed.append(delivery_id)
    deliveries = Delivery.objects.select_related("event", "subscription").in_bulk(claimed)
    keys, chosen = set(), []
    for delivery_id in claimed:  # one per order key: the next waits for this one's answer
        delivery = deliveries[delivery_id]
        if delivery.order_key in keys:
            Delivery.objects.filter(pk=delivery_id, lease_until=lease).update(lease_until=None)
        else:
            keys.add(delivery.order_key)
            chosen.append(delivery)
    return chosen, lease


def signed(delivery, now=None):
    """(body, headers) of a delivery: its event's payload, signed as Standard Webhooks says, with
    the same webhook-id on every try."""
    payload = delivery.event.payload if delivery.body is None else delivery.body
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    secret = delivery.subscription.secret if delivery.subscription_id else delivery.secret
    when = now or timezone.now()
    message_id = f"msg_{delivery.pk}"
    signature = Webhook(secret).sign(message_id, when, body)
    return body.encode(), {"content-type": "application/json", "user-agent": "jobsite-webhooks",
                           "webhook-id": message_id, "webhook-timestamp": str(int(when.timestamp())),
                           "webhook-signature": signature}


def _send(delivery):
    """(started, answer or None, error); runs in a pool thread and touches no database."""
    started = timezone.now()
    try:
        body, headers = signed(delivery, started)
        return started, outbound.post(delivery.url, body, headers, settings.WEBHOOK_TIMEOUT_SECONDS), ""
    except outbound.UnsafeURL as exc:
        return started, None, f"the URL {exc}"
    except OSError as exc:
        return started, None, _short(exc)
    except Exception as exc:  # whatever else goes wrong is this try's failure, not the task's
        logger.exception("webhook delivery %s", delivery.pk)
        return started, None, _short(exc)


def _short(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:299] + "…"


def _record(delivery, lease, started, answer, error):
    now = timezone.now()
    tries = delivery.tries + 1
    code = answer.status if answer else None
    delays = settings.WEBHOOK_RETRY_SECONDS
    if code is not None and 200 <= code < 300:
        status, next_try = Delivery.Status.DELIVERED, None
    elif code == 410:
        status, next_try = Delivery.Status.CANCELED, None
    elif tries <= len(delays):
        status, next_try = Delivery.Status.PENDING, now + timedelta(seconds=delays[tries - 1])
    else:
        status, next_try = Delivery.Status.FAILED, None
    with transaction.atomic():
        # Only while the lease is this sender's: a late answer after the lease ran out (another
        # sender has it now) is not recorded over the newer one.
        mine = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING, lease_until=lease)
        if not mine.select_for_update(no_key=True).exists():
            return
        Attempt.objects.create(delivery=delivery, number=tries, started=started,
                               seconds=answer.seconds if answer else (now - started).total_seconds(),
                               status_code=code, error=error,
                               answer=answer.head.decode("utf-8", "replace") if answer else "", next_try=next_try)
        mine.update(
            status=status, tries=tries, next_try=next_try or now, lease_until=None, last_status_code=code,
            last_error=error or (f"the receiver answered {code}" if code and status != Delivery.Status.DELIVERED else ""),
            finished=None if status == Delivery.Status.PENDING else now)
        if code == 410:
            _gone(delivery)


def _gone(delivery):
    """410 Gone: the receiver wants no more."""
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING)
    if delivery.subscription_id:
        Subscription.objects.filter(pk=delivery.subscription_id).update(
            active=False, disabled_reason=f"the receiver answered 410 Gone on {timezone.now():%Y-%m-%d %H:%M} UTC")
        pending = pending.filter(subscription_id=delivery.subscription_id)
    else:
        pending = pending.filter(subscription__isnull=True, url=delivery.url, order_key=delivery.order_key)
    pending.update(status=Delivery.Status.CANCELED, finished=timezone.now(),
                   last_error="the receiver answered 410 Gone")


def send_again(deliveries):
    """The admin's "send again": the deliveries are pending once more and due now; one whose
    tries are used up gets one more."""
    return deliveries.update(status=Delivery.Status.PENDING, next_try=timezone.now(), lease_until=None,
                             finished=None)


PRUNE_PART = 1000


def prune(each_part=None):
    """Delete finished deliveries (with their tries) and events older than
    JOBSITE_WEBHOOK_RETENTION_DAYS, PRUNE_PART at a time, calling `each_part()` after each part;
    an event is kept while a delivery of it is pending."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    pending = Delivery.objects.filter(event=OuterRef("pk"), status=Delivery.Status.PENDING)
    for old in (Delivery.objects.filter(created__lt=cutoff).exclude(status=Delivery.Status.PENDING),
                Event.objects.filter(created__lt=cutoff).exclude(Exists(pending))):
        while True:
            ids = list(old.order_by("id").values_list("id", flat=True)[:PRUNE_PART])
            if not ids:
                break
            old.model.objects.filter(id__in=ids).delete()
            if each_part is not None:
                each_part()
