from django.contrib import admin, messages

from . import delivery as sending
from .models import Attempt, Delivery, Event, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "url", "active", "disabled_reason", "created"]
    list_filter = ["active"]
    search_fields = ["url", "owner__username"]
    readonly_fields = ["owner", "disabled_reason", "created"]  # the secret is never shown again
    list_select_related = ["owner"]

    def has_add_permission(self, request):
        return False  # made through the API, which shows its secret once


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started", "seconds", "status_code", "error", "answer", "next_try"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event_type", "url", "status", "tries", "last_status_code", "next_try", "created"]
    list_filter = ["status", "event__type", "last_status_code", "created"]
    search_fields = ["url", "subscription__owner__username", "event__job__id"]
    readonly_fields = ["event", "subscription", "url", "order_key", "status", "tries", "next_try", "lease_until",
                       "last_status_code", "last_error", "created", "finished"]
    exclude = ["secret"]
    list_select_related = ["event"]
    inlines = [AttemptInline]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="event", ordering="event__type")
    def event_type(self, delivery):
        return delivery.event.type

    @admin.action(description="Send again")
    def send_again(self, request, queryset):
        count = sending.send_again(queryset)
        self.message_user(request, f"{count} deliveries will be sent again.", messages.SUCCESS)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "owner", "job", "created"]
    list_filter = ["type", "created"]
    search_fields = ["owner__username", "job__id"]
    readonly_fields = ["type", "owner", "job", "payload", "created"]
    list_select_related = ["owner", "job"]

    def has_add_permission(self, request):
        return False
