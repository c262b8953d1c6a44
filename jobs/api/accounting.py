"""What the storage, quotas and cleanup endpoints answer: the site's and each user's use of its
limits."""

from rest_framework import serializers


class UserStorageSerializer(serializers.Serializer):
    username = serializers.CharField()
    interim_bytes = serializers.IntegerField()
    output_bytes = serializers.IntegerField()
    job_bytes = serializers.IntegerField()
    data_bytes = serializers.IntegerField()
    total_bytes = serializers.IntegerField()
    jobs = serializers.IntegerField()


class StorageLimitsSerializer(serializers.Serializer):
    job_bytes = serializers.IntegerField(help_text="outputs and interim results of a user's jobs (413 beyond)")
    jobs = serializers.IntegerField(help_text="jobs a user keeps, finished ones too until deleted (429 beyond)")
    active_jobs = serializers.IntegerField(help_text="jobs a user has waiting, queued, running or merging (429 beyond)")
    data_bytes = serializers.IntegerField(help_text="a user's data files (413 beyond)")


class StorageSerializer(serializers.Serializer):
    interim_bytes = serializers.IntegerField(help_text="tile outputs kept for resuming")
    output_bytes = serializers.IntegerField(help_text="merged results")
    job_bytes = serializers.IntegerField(help_text="interim and output bytes: what the job storage quota counts")
    data_bytes = serializers.IntegerField(help_text="uploaded data files")
    total_bytes = serializers.IntegerField()
    jobs = serializers.IntegerField(help_text="jobs kept")
    limits = StorageLimitsSerializer(help_text="what each user may keep")
    users = UserStorageSerializer(many=True, required=False, help_text="per user (staff only)")


class QuotaSerializer(serializers.Serializer):
    limit = serializers.FloatField(allow_null=True, help_text="null: no limit")
    used = serializers.FloatField()


class QuotasSerializer(serializers.Serializer):
    day = serializers.DateField(help_text="today (UTC), the day the daily quotas count")
    resets = serializers.DateTimeField(help_text="when the daily quotas start afresh")
    pixels_per_day = QuotaSerializer(help_text="pixels of the jobs submitted or resumed today (429 beyond)")
    cpu_seconds_per_day = QuotaSerializer(help_text="CPU seconds of tiles and merges today (429 once used up)")
    jobs_today = serializers.IntegerField(help_text="jobs submitted or resumed today")
    job_storage_bytes = QuotaSerializer(help_text="outputs and interim results kept (413 beyond)")
    data_storage_bytes = QuotaSerializer(help_text="data files (413 beyond)")
    active_jobs = QuotaSerializer(help_text="jobs waiting, queued, running or merging (429 beyond)")
    jobs = QuotaSerializer(help_text="jobs kept, finished ones too (429 beyond)")
    running_tiles = QuotaSerializer(help_text="tiles running now; beyond the limit the scheduler passes you over")


class CleanupSerializer(serializers.Serializer):
    jobs = serializers.IntegerField(help_text="jobs whose interim results were deleted")
    files = serializers.IntegerField()
    bytes = serializers.IntegerField()
