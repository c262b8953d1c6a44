"""The django-q2 tasks of notifications: thin calls into notifications.delivery."""

from . import delivery


def deliver():
    delivery.deliver()


def prune():
    delivery.prune()
