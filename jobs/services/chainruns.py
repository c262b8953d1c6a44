"""The interim results of a chain's steps, tile by tile (jobs.chains): what a run of a tile or a
block reads and keeps, what it records, and the step a resumed tile starts at.

A chain's tile records in JobTile.steps:
- "outputs": for each step before the last, [path, bytes, col, row, width, height, file size]:
  the window that step left, placed on the grid (a block's file is shared by its tiles, each
  counting its share of the bytes), or null;
- "start": the step its next run starts at, from the interim result of the step before;
- "failed": the step its last attempt failed at;
- "runs": how many times each step ran for it.

An interim result keeps the margin that the later steps need, so a run that starts at step k
reads the results of step k - 1 of its tiles and nothing else.
"""

from django.db.models import BigIntegerField, Count, Sum
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast

from jobsite import media

from .. import storage
from ..models import InterimResults, JobTile, TileStatus
from ..raster.chain import StepFailed
from ..raster.io import GridTile


def options(job, kind, job_tiles):
    """process_chain's arguments for a run of `job_tiles` (a block of one start step, or a tile):
    where it starts, the interim results it reads, and where it keeps its own (unless the job keeps
    none)."""
    first, last = job_tiles[0], job_tiles[-1]
    start = first.steps.get("start", 0)
    if start and not all(_recorded(job_tile, start - 1) for job_tile in job_tiles):
        start = 0  # not what a resume leaves; from the collection, to be safe
    relpaths = [storage.step_output_relpath(job.pk, first.tile.number, last.tile.number, first.attempts, step)
                for step in range(len(kind.steps) - 1)]
    placed = {}
    if start:
        for job_tile in job_tiles:
            path, _, col, row, width, height, _ = job_tile.steps["outputs"][start - 1]
            placed[path] = GridTile(str(media.media_path(path)), col, row, width, height)
    keep = None if job.interim_results == InterimResults.NEVER else [media.media_path(p) for p in relpaths]
    return {"start": start, "keep": keep, "written": [], "interim": list(placed.values()) or None}


def _recorded(job_tile, step):
    outputs = job_tile.steps.get("outputs", [])
    return step < len(outputs) and bool(outputs[step])


def record(kind, job_tiles, run, error=None):
    """Note on each of `job_tiles` that still runs under its claim what the `run` (its options)
    kept and which steps ran, and, for a run that failed with `error`, the step it failed at."""
    start, written = run["start"], run["written"]
    if error is None:
        reached = len(kind.steps) - 1
    elif isinstance(error, StepFailed):
        reached = error.step
    else:  # before the first step or after the last one it kept
        reached = max((item[0] + 1 for item in written), default=start)
    root, replaced, matched = str(media.media_path("")), set(), 0
    for index, job_tile in enumerate(job_tiles):
        state = dict(job_tile.steps)
        outputs = (list(state.get("outputs", [])) + [None] * len(kind.steps))[:len(kind.steps) - 1]
        for step, path, size, col, row, width, height in written:
            share = size // len(job_tiles) + (size % len(job_tiles) if index == 0 else 0)
            if outputs[step]:
                replaced.add(outputs[step][0])
            outputs[step] = [path.removeprefix(root).lstrip("/"), share, col, row, width, height, size]
        runs = (list(state.get("runs", [])) + [0] * len(kind.steps))[:len(kind.steps)]
        for step in range(start, min(reached, len(kind.steps) - 1) + 1):
            runs[step] += 1
        state.update(outputs=outputs, runs=runs)
        if error is None:
            state.pop("failed", None)
        else:  # another attempt starts where this one failed, from the result kept before it
            state["failed"] = reached
            state["start"] = next((step for step in range(reached, 0, -1)
                                   if outputs[step - 1] and kind.can_start_at(step)), 0)
        matched += JobTile.objects.filter(pk=job_tile.pk, status=TileStatus.RUNNING, lease_owner=job_tile.lease_owner,
                                          attempts=job_tile.attempts).update(
            steps=state, steps_size=sum(output[1] for output in outputs if output))
        job_tile.steps = state
    if not matched:  # no tile runs under this claim any more (stopped, taken over): nothing keeps them
        discard(run)
        return
    if replaced:  # an earlier attempt's, unless another tile of its block still records them
        for state in JobTile.objects.filter(job_id=job_tiles[0].job_id, steps_size__gt=0).values_list("steps", flat=True):
            replaced -= {output[0] for output in state.get("outputs", []) if output}
        media.remove_files_on_commit(sorted(replaced))


def discard(run):
    """Remove the interim results a run kept that no tile records (a block that runs again tile by
    tile, a canceled run)."""
    for _, path, *_ in run.get("written", ()):
        media.media_path(path).unlink(missing_ok=True)


def first_changed(old_steps, new_steps):
    """The first step of `new_steps` that has to run again for every tile: the first at which the
    chains differ (type or parameters), the last of a chain cut short, or None if they are equal."""
    for number, (old, new) in enumerate(zip(old_steps, new_steps, strict=False)):
        if (old["type"], old["params"]) != (new["type"], new["params"]):
            return number
    return None if len(old_steps) == len(new_steps) else min(len(old_steps), len(new_steps) - 1)


def same_versions(stored, kind, steps):
    """Whether the first `steps` steps of `kind` have the versions a chain job `stored` ran with
    (its type_version, "1+1+2"; a long one is stored as a digest, which tells nothing per step)."""
    ran = stored.split("+")
    return all(number < len(ran) and ran[number] == step.kind.version for number, step in enumerate(kind.steps[:steps]))


def plan_starts(job, kind, tiles, changed, grid):
    """Set the step each of `tiles` (a queryset of the job's tiles that run again, their rows
    locked) starts at: the first `changed` step, or, for a tile that failed, the step it failed at,
    whichever is first; then as far back as its kept interim results allow: the result of the step
    before must be intact (its file has the size it was written with) and cover the tile with the
    halo the later steps need now. The tile's interim results of that step and later ones are
    dropped, their files once no tile records them. Returns the number of tiles per start step."""
    halos = [step.kind.tile_halo(step.params, grid) for step in kind.steps]
    holders = {}  # path: how many tiles of the job record it
    for state in JobTile.objects.filter(job_id=job.pk, steps_size__gt=0).values_list("steps", flat=True).iterator():
        for output in state.get("outputs", []):
            if output:
                holders[output[0]] = holders.get(output[0], 0) + 1
    intact, counts, changed_rows, dropped = {}, {}, [], set()
    for job_tile in (tiles.select_related("tile").order_by("id")
                     .only("id", "status", "steps", "tile__col", "tile__row", "tile__width", "tile__height")
                     .iterator(chunk_size=storage.CHUNK)):
        state, tile = job_tile.steps, job_tile.tile
        start = len(kind.steps) if changed is None else changed
        if job_tile.status == TileStatus.FAILED:
            start = min(start, state.get("failed", 0))
        elif job_tile.status != TileStatus.SUCCEEDED:
            start = min(start, state.get("start", 0))
        outputs = state.get("outputs", [])
        while start > 0 and not (kind.can_start_at(start) and _usable(
                outputs[start - 1] if start - 1 < len(outputs) else None, tile, sum(halos[start:]), grid, intact)):
            start -= 1
        counts[start] = counts.get(start, 0) + 1
        for output in outputs[start:]:
            if output:
                holders[output[0]] -= 1
                if not holders[output[0]]:
                    dropped.add(output[0])
        kept = outputs[:start]
        job_tile.steps = {**{key: value for key, value in state.items() if key != "failed"}, "outputs": kept,
                          "start": start}
        job_tile.steps_size = sum(output[1] for output in kept if output)
        changed_rows.append(job_tile)
        if len(changed_rows) >= storage.CHUNK:
            JobTile.objects.bulk_update(changed_rows, ["steps", "steps_size"])
            changed_rows = []
    JobTile.objects.bulk_update(changed_rows, ["steps", "steps_size"])
    media.remove_files_on_commit(sorted(dropped))
    return counts


def _usable(output, tile, halo, grid, intact):
    """Whether a tile's kept `output` of a step is whole (`intact` remembers each file's answer)
    and covers the tile grown by `halo`, clipped to the grid."""
    if not output:
        return False
    path, _, col, row, width, height, size = output
    if path not in intact:
        try:
            intact[path] = media.media_path(path).stat().st_size == size
        except OSError:
            intact[path] = False
    left, top = max(0, tile.col - halo), max(0, tile.row - halo)
    right, bottom = min(grid.width, tile.col + tile.width + halo), min(grid.height, tile.row + tile.height + halo)
    return intact[path] and col <= left and row <= top and col + width >= right and row + height >= bottom


def step_facts(job):
    """Per step of a chain job: how many of its tiles have the step done (a tile that succeeded has
    them all; another those before the step it starts at or failed at), and the bytes its kept
    interim results take (null for the last step, which keeps none). Two queries, however many tiles."""
    count = len(job.params["steps"])
    done = [0] * count
    rows = (JobTile.objects.filter(job_id=job.pk).values("status", "steps__start", "steps__failed")
            .annotate(n=Count("pk")).order_by())
    for row in rows:
        if row["status"] == TileStatus.SUCCEEDED:
            reached = count
        elif row["status"] == TileStatus.FAILED:  # it ran the steps before the one it failed at
            reached = max(row["steps__start"] or 0, row["steps__failed"] or 0)
        else:  # it runs from its start: the steps before are kept
            reached = row["steps__start"] or 0
        for step in range(min(reached, count)):
            done[step] += row["n"]
    sizes = JobTile.objects.filter(job_id=job.pk, steps_size__gt=0).aggregate(**{
        str(step): Sum(Cast(KeyTransform("1", KeyTransform(str(step), KeyTransform("outputs", "steps"))),
                            BigIntegerField())) for step in range(count - 1)}) if count > 1 else {}
    return [{"tiles_done": done[step], "interim_bytes": (sizes[str(step)] or 0) if step < count - 1 else None}
            for step in range(count)]


def describe(kind, counts):
    """Per step, for the log of a resume: how many of the tiles that run again keep its result."""
    total = sum(counts.values())
    parts = []
    for number, step in enumerate(kind.steps):
        kept = sum(count for start, count in counts.items() if start > number)
        parts.append(f"step {number + 1} ({step.kind.name}) kept for {kept} and run for {total - kept} of them")
        if not kept:
            break
    return "; ".join(parts)
