from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs.apps import tool_time_limit
from jobs.declared import DeclarationError, load_files
from jobs.jobtypes import BUILT_IN


class Command(BaseCommand):
    help = ("Check job type files (by default those JOBSITE_JOB_TYPES_FILE names): their shape, placeholders, "
            "programs and names, each problem with its file and line. Exits non-zero if any is bad.")

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="*", help="job type files (YAML); default: JOBSITE_JOB_TYPES_FILE")

    def handle(self, files, **options):
        files = files or settings.JOB_TYPES_FILES
        if not files:
            raise CommandError("no job type files: name them, or set JOBSITE_JOB_TYPES_FILE")
        try:
            declared = load_files(files, taken=BUILT_IN, path_variable=settings.TOOL_PATH,
                                  max_time_limit=tool_time_limit())
        except DeclarationError as exc:
            raise CommandError(f"{len(exc.problems)} problems in the job type files:\n" + "\n".join(exc.problems)) from None
        for kind in declared.values():
            self.stdout.write(f"{kind.name} (version {kind.version}, halo {kind.halo}): {kind.tool.argv[0]}, "
                              f"from {kind.source}")
        self.stdout.write(f"{len(declared)} job types in {len(files)} file(s): all fine")
