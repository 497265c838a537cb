"""The generated sections of ``bench/grading_throughput.py``'s report: "200 submissions" and "Where the time goes".

Every figure comes from the run being reported (``Bench`` and its ``figures()``): the ``lesson`` row
(``bench/lesson_cells.py``), the ``profile`` row (``bench/profile_summary.py``) and the grading rows.
"""

from __future__ import annotations

SECTION = "## Where the time goes"


def two_hundred(bench, figures: dict) -> list[str]:
    """The 200-submission run as measured, then the N-submission rows' extrapolations and the floors."""
    lines, big = [], bench.rows.get("j2_200")
    if big is not None:
        lines.append(f"Measured: `autograder grade -j 2` of {big.n} submissions took **{big.wall:.0f} s = {big.wall / 60:.1f} min**"
                     f" ({big.per_submission:.2f} s per submission, {big.cpu_per_submission:.1f} CPU s per submission); peak memory"
                     f" {big.peak_worker_mb:,.0f} MiB per worker, {big.peak_total_mb:,.0f} MiB in all. Statuses: "
                     + ", ".join(f"{n} {s}" for s, n in big.statuses.items()) + ".")
    else:
        lines.append("The 200-submission run (`j2_200`) did not run.")
    for key, extra, how in (("j2", figures.get("extrapolation"), "as configured"),
                            ("j2_all", figures.get("extrapolation_all"), "every cell run")):
        if extra:
            steady = f"; at steady state {extra['steady']['minutes']:.1f} min" if extra.get("steady") else ""
            lines.append(f"From the N = {bench.rows[key].n} row `{key}` ({how}): {extra['per_submission']:.2f} s per submission"
                         f" x 200 = {extra['minutes']:.1f} min (start-up spread over N, an upper bound){steady}.")
    lines.extend(_floors(bench, figures.get("budget")))
    return lines


def _floors(bench, budget: dict | None) -> list[str]:
    if not budget:
        return ["Floors: the `lesson` row did not run."]
    cores = bench.machine["usable_cores"]
    out = []
    for cpu, what in ((budget.get("every_cell"), "every cell of the lesson (imports excluded, no hidden checks)"),
                      (budget["needed"], "the lesson's graded part and the hidden checks (imports excluded)")):
        if cpu:
            out.append(f"Floor for {what}: {cpu:.2f} CPU s per notebook, so 200 notebooks need at least 200 x {cpu:.2f} / {cores} cores"
                       f" = {200 * cpu / cores / 60:.1f} min of this machine with perfect parallelism and no grading overhead.")
    return out


def section(bench, figures: dict) -> list[str]:
    """"Where the time goes": the lesson's own CPU, the grader's CPU against it, the profile, memory."""
    lines = [SECTION, ""]
    lines += _lesson(bench.lesson, bench.lesson_200)
    lines += _budget(figures.get("budget"), figures.get("ratios", {}))
    lines += _cpu_roles(bench.rows)
    lines += _profile(bench.profile, bench.profile_n)
    lines += _memory(bench.rows)
    return lines


def _lesson(lesson: dict, lesson_200: dict) -> list[str]:
    if not lesson:
        return ["**The lesson's own CPU**: not measured (the `lesson` row did not run).", ""]
    lines = ["**The lesson's own CPU** (`bench/lesson_cells.py`: the solved lesson in a plain kernel, 1 math thread, the imports"
             " left out, median of each measurement's runs; measured right before the `j2` row, and the graded part again right"
             " before the 200-submission run, since this machine's speed drifts):", "",
             "| part | CPU s per notebook | runs |", "| --- | ---: | --- |"]
    names = {"all": "every cell, no hidden checks", "graded": "up to the last graded cell, no hidden checks",
             "graded_checks": "up to the last graded cell, the hidden checks run in the kernel"}
    for measured, when in ((lesson, ""), (lesson_200, ", before the 200-submission run")):
        for key, name in names.items():
            if key in measured:
                lines.append(f"| {name}{when} | {measured[key]['cpu']:.2f} | {', '.join(f'{r:.2f}' for r in measured[key]['runs'])} |")
    if "all" in lesson:
        slowest = "; ".join(f"`{line[:50]}` {seconds:.1f} s" for seconds, line in lesson["all"]["slowest"][:5])
        lines += ["", f"Slowest cells of the whole lesson (wall, first run): {slowest}."]
    return lines + [""]


def _budget(budget: dict | None, ratios: dict) -> list[str]:
    if not budget:
        return []
    lines = [f"**The grader's CPU against what grading needs.** The graded part of the lesson takes {budget['graded_part']:.2f}"
             f" CPU s and the hidden checks {budget['hidden_checks']:.2f} CPU s: {budget['needed']:.2f} CPU s per submission at the least."]
    if budget["grader"] is not None:
        lines.append(f"`autograder grade -j 2` spent {budget['grader']:.2f} CPU s per submission (every process of the row: the"
                     f" grading processes, kernels, checkers, fork servers): {budget['ratio']:.2f}x what is needed;"
                     f" the rest, {budget['grader'] - budget['needed']:.2f} CPU s, is the grader's own work (nbgrader's steps, the"
                     " kernel's fork and sandbox, the checks' channel, start-up spread over N).")
    if budget.get("grader_200") is not None:
        lines.append(f"In the 200-submission run, start-up spread over 200: {budget['grader_200']:.2f} CPU s per submission,"
                     f" {budget['ratio_200']:.2f}x what is needed ({budget['needed_200']:.2f} CPU s: the lesson's graded part and"
                     " the hidden checks measured again right before that run).")
    if budget.get("marginal") is not None and budget["startup"] < 0:
        lines.append(f"No split of start-up from each submission: solved from the two runs (CPU in all = start-up + N x per"
                     f" submission), start-up comes out below zero ({budget['startup']:.1f} CPU s per batch), so the machine's"
                     " drift between them is larger than the start-up itself.")
    elif budget.get("marginal") is not None:
        lines.append(f"Split from the two runs (CPU in all = start-up + N x per submission; they ran minutes apart): start-up"
                     f" {budget['startup']:.1f} CPU s per batch, then {budget['marginal']:.2f} CPU s per submission,"
                     f" {budget['ratio_marginal']:.2f}x what is needed.")
    if "j2_vs_j2_all_throughput" in ratios:
        lines.append(f"Leaving out the cells after the last graded cell makes `-j 2` {ratios['j2_vs_j2_all_throughput']:.2f}x as fast"
                     " as with every cell run; no score depends on those cells.")
    return lines + [""]


def _cpu_roles(rows: dict) -> list[str]:
    """The grading rows' CPU by process role, per submission (the fork servers' and coordinator's start-up included)."""
    shown = [rows[key] for key in ("j2", "j2_200") if key in rows and rows[key].cpu_roles]
    if not shown:
        return []
    roles = list(dict.fromkeys(role for row in shown for role in row.cpu_roles))
    lines = ["**The grader's CPU by process role** (`autograder grade -j 2`; every process's user + system CPU at its last"
             " sample, every 0.2 s, so a process's last moments are missed; CPU s per submission, start-up spread over N;"
             " the fork servers' CPU is their imports and warm-up, what they fork is counted in its own role):", "",
             "| process role | " + " | ".join(f"N = {row.n}: processes | N = {row.n}: CPU s per submission" for row in shown) + " |",
             "| --- | " + " | ".join("---: | ---:" for _ in shown) + " |"]
    for role in roles:
        cells = []
        for row in shown:
            seconds, count = row.cpu_roles.get(role, [0.0, 0])
            cells.append(f"{int(count)} | {seconds / row.n:.2f}")
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    lines.append("| sampled, in all | " + " | ".join(f"{sum(int(c) for _, c in row.cpu_roles.values())} |"
                                                 f" {sum(s for s, _ in row.cpu_roles.values()) / row.n:.2f}" for row in shown) + " |")
    lines.append("| exact, in all (the row's CPU) | " + " | ".join(f"- | {row.cpu / row.n:.2f}" for row in shown) + " |")
    return lines + [""]


def _profile(profile: list[dict], n: int) -> list[str]:
    if not profile:
        return ["**Profile**: not recorded (the `profile` row did not run, or py-spy was not found).", ""]
    lines = [f"**Profile** of `autograder grade -j 2` on {n} submissions (`py-spy record --subprocesses --idle`, main threads only,"
             " wall seconds per submission, waiting included; py-spy's sampling slows the run somewhat):", "",
             "| process role | phase | s per submission | share of the role |", "| --- | --- | ---: | ---: |"]
    for times in profile:
        total = sum(times["phases"].values()) or 1.0
        lines.append(f"| {times['role']} ({times['processes']} processes) | all | {total / n:.2f} | 100% |")
        for name, seconds in times["phases"].items():
            lines.append(f"| | {name} | {seconds / n:.2f} | {100 * seconds / total:.0f}% |")
    return lines + [""]


def _memory(rows: dict) -> list[str]:
    shown = [f"{row.label}: {row.peak_worker_mb:,.0f} MiB per worker, {row.peak_total_mb:,.0f} MiB in all"
             for key, row in rows.items() if key in ("j1", "j2", "j2_all", "j2_200")]
    return ["**Memory** (peak resident): " + "; ".join(shown) + "." if shown else "**Memory**: no grading row ran."]
