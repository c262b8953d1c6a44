"""The REST API of notifications: a user's standing webhook subscriptions at /api/v1/webhooks/,
with a test ping and the recent deliveries of each."""

from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jobsite import outbound

from . import events
from .models import Attempt, Delivery, EventType, Subscription

RECENT_DELIVERIES = 50
MAX_SUBSCRIPTIONS = 20
SUBSCRIBABLE = [t for t in EventType.values if t != EventType.PING]


class SubscriptionSerializer(serializers.ModelSerializer):
    url = serializers.CharField(max_length=outbound.MAX_URL, help_text="where to POST the events (http or https, "
                                                                         "a public address)")
    events = serializers.ListField(child=serializers.ChoiceField(choices=SUBSCRIBABLE), required=False,
                                   max_length=len(SUBSCRIBABLE),
                                   help_text="the event types wanted; every type without it (or empty)")

    class Meta:
        model = Subscription
        fields = ["id", "url", "events", "active", "disabled_reason", "created"]
        read_only_fields = ["id", "disabled_reason", "created"]

    def validate_url(self, url):
        try:
            outbound.check_url_and_host(url)
        except outbound.UnsafeURL as exc:
            raise serializers.ValidationError(str(exc)) from None
        return url

    def validate_events(self, types):
        return sorted(set(types))


class NewSubscriptionSerializer(SubscriptionSerializer):
    secret = serializers.CharField(read_only=True, help_text="signs every delivery (Standard Webhooks); shown only "
                                                             "in this answer")

    class Meta(SubscriptionSerializer.Meta):
        fields = [*SubscriptionSerializer.Meta.fields, "secret"]


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["number", "started", "seconds", "status_code", "error", "answer", "next_try"]


class DeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(source="event.type")
    event_id = serializers.IntegerField(source="event.id")
    attempts = AttemptSerializer(many=True)

    class Meta:
        model = Delivery
        fields = ["id", "event", "event_id", "url", "status", "tries", "next_try", "last_status_code", "last_error",
                  "created", "finished", "attempts"]


class SubscriptionViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                          mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The caller's webhook subscriptions: every event of the types wanted about the caller's
    jobs and data files is POSTed to the URL, signed with the subscription's secret."""

    serializer_class = SubscriptionSerializer
    lookup_value_regex = r"\d{1,18}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Subscription.objects.none()
        return Subscription.objects.filter(owner=self.request.user)

    @extend_schema(responses={201: NewSubscriptionSerializer})
    def create(self, request, *args, **kwargs):
        serializer = SubscriptionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            # The user's row locked: two creates at once count one after the other.
            get_user_model().objects.select_for_update(no_key=True).filter(pk=request.user.pk).first()
            if Subscription.objects.filter(owner=request.user).count() >= MAX_SUBSCRIPTIONS:
                return Response({"detail": f"you have {MAX_SUBSCRIPTIONS} webhook subscriptions, the most a user "
                                           "may have; delete one to add another"}, status=status.HTTP_429_TOO_MANY_REQUESTS)
            subscription = serializer.save(owner=request.user, secret=outbound.new_secret())
        return Response(NewSubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        if serializer.validated_data.get("active"):
            serializer.save(disabled_reason="")
        else:
            serializer.save()

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a ping event to this subscription alone; its delivery, which the cluster sends."""
        delivery = events.ping(self.get_object())
        return Response(DeliverySerializer(Delivery.objects.prefetch_related("attempts").get(pk=delivery.pk)).data,
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: DeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The subscription's most recent deliveries, newest first, with every try."""
        recent = (Delivery.objects.filter(subscription=self.get_object()).select_related("event")
                  .prefetch_related("attempts").order_by("-id")[:RECENT_DELIVERIES])
        return Response(DeliverySerializer(recent, many=True).data)
