"""The `changeflow` command that users and operators run.

Exit codes: 0 fine; 1 a check found problems (config, chain); 2 the command could not run
(bad settings, unknown change, unreachable database).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from changeflow.report import obligation_rows, print_changes, print_obligations
from config.loader import ConfigError, check_config, load_config
from config.settings import Settings
from domain.notices import unreachable
from integrations.anchors import AnchorError, FileAnchors
from integrations.chain_keys import ChainKeyError, new_key
from integrations.changelog_retention import RetentionError
from integrations.changelog_sql import SqlChangeLog
from integrations.factory import (
    Adapters,
    anchor_targets,
    build,
    migrate_change_log,
    open_change_log,
    open_tickets,
)
from integrations.ports import Anchors
from reporting.model import Quarter
from tasks.anchoring import check_anchors, check_heads, publish_head

_ANCHORS = Path("\0settings")
"""`--anchors` with no file: the settings' anchor file."""
EXIT_PROBLEMS = 1
EXIT_UNUSABLE = 2


class CommandFailed(Exception):
    """The command cannot run; the message says why and how to fix it."""


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"CHANGEFLOW_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                 if e["loc"] else str(e["msg"]).removeprefix("Value error, ")
                 for e in exc.errors()]
        raise CommandFailed("invalid settings:\n  " + "\n  ".join(lines)) from None


@contextmanager
def _change_log() -> Iterator[SqlChangeLog]:
    """The change log the settings point at, closed afterwards."""
    settings = _settings()
    try:
        config = load_config(settings.config_dir)
    except ConfigError as exc:
        raise CommandFailed(f"configuration has problems (run `changeflow check-config`):\n"
                            f"{exc}") from None
    try:
        log = open_change_log(settings, config)
    except Exception as exc:  # noqa: BLE001 - any driver error: name the setting, not the URL
        raise CommandFailed(
            f"cannot open the change log at CHANGEFLOW_DATABASE_URL: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300]}") from None
    try:
        yield log
    finally:
        log.close()


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate policy, roster and services; print every problem."""
    settings = _settings()
    config, problems = check_config(settings.config_dir)
    if problems or config is None:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s) in {settings.config_dir}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"ok: {config.policy.id} v{config.policy.version}, {len(config.roster.people)} "
          f"people, {len(config.services.services)} service(s) in {settings.config_dir}")
    deciders = [p for p in config.roster.people.values() if p.roles and not p.shared_account]
    for person in unreachable(deciders, settings.notifiers):
        print(f"warning: roster.yaml: {person.id} ({', '.join(sorted(person.roles))}) has no "
              f"personal channel among CHANGEFLOW_NOTIFIERS={','.join(settings.notifiers)}: "
              "they cannot be sent a one-time code, so they cannot decide in the Prefect "
              "form (give them a slack_id, or add a notifier)")
    return 0


def _anchor_targets(settings: Settings) -> list[Anchors]:
    """The configured anchor targets (the ticket system opened only when one is a ticket)."""
    tickets = None
    if settings.anchor_ticket:
        try:
            tickets = open_tickets(settings, load_config(settings.config_dir))
        except (ConfigError, ValueError) as exc:
            raise CommandFailed(f"cannot open the ticket system for CHANGEFLOW_ANCHOR_TICKET: "
                                f"{exc}") from None
    return anchor_targets(settings, tickets)


def cmd_log_verify(args: argparse.Namespace) -> int:
    """Check the chain (hashes, MACs, times), the cached records, and any kept heads."""
    targets: list[Anchors] = []
    if args.anchors == _ANCHORS:
        targets = _anchor_targets(_settings())
    elif args.anchors is not None:
        targets = [FileAnchors(args.anchors)]
    with _change_log() as log:
        result = log.verify(fold_changes=args.fold)
        checks = []
        if args.expect:
            checks.append(("expected head(s)", check_heads(
                log, [(f"expected head {seq}:{hash_[:12]}", seq, hash_)
                      for seq, hash_ in args.expect])))
        if targets:
            checks.append(("anchor(s)", check_anchors(log, targets)))
        key_id = log.keys.current.id
    broken = False
    if result.problem is not None:
        print(f"chain BROKEN after {result.checked} good event(s): {result.problem}")
        broken = True
    else:
        print(f"chain ok: {result.checked} event(s) verified (hash, MAC under key "
              f"{key_id}, time), head event {result.head_seq}, head hash {result.head_hash}")
    for mismatch in result.mismatches:
        print(f"record does not hold: {mismatch}")
    for what, check in checks:
        if check.problem is not None:
            print(f"NOT HELD: {check.problem}")
            broken = True
        else:
            print(f"{what} held: {check.checked}")
    return EXIT_PROBLEMS if broken or result.mismatches else 0


def expected_head(text: str) -> tuple[int, str]:
    """`--expect`'s SEQ:HASH as (seq, lower-case hash); argparse names a malformed one."""
    seq, sep, hash_ = text.partition(":")
    if not sep or not seq.isdigit() or not re.fullmatch(r"[0-9a-fA-F]{64}", hash_):
        raise argparse.ArgumentTypeError(f"{text!r} is not SEQ:HASH (an event number and its "
                                         "64-digit hash, as `log verify` prints them)")
    return int(seq), hash_.lower()


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or update the change log's schema as its owner, and grant the flows' role."""
    settings = _settings()
    try:
        config = load_config(settings.config_dir)
        granted = migrate_change_log(settings, config)
    except ConfigError as exc:
        raise CommandFailed(f"configuration has problems:\n{exc}") from None
    except Exception as exc:  # noqa: BLE001 - any driver error: name the setting, not the URL
        raise CommandFailed(
            f"cannot migrate the change log at CHANGEFLOW_MIGRATE_DATABASE_URL (or "
            f"CHANGEFLOW_DATABASE_URL): {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300]}") from None
    print("schema ready" + (f"; role {granted!r} may read, append and move the head, nothing "
                            "more" if granted else ""))
    return 0


def cmd_log_anchor(args: argparse.Namespace) -> int:
    """Publish the chain's signed head to the anchor file, after checking the chain."""
    anchors = _anchor_targets(_settings())
    with _change_log() as log:
        result = log.verify()
        if not result.ok:
            print(f"not anchored: the change log does not hold: "
                  f"{result.problem or '; '.join(result.mismatches)}")
            return EXIT_PROBLEMS
        try:
            anchor = publish_head(log, anchors)
        except AnchorError as exc:
            print(f"not anchored everywhere: {exc}")
            return EXIT_PROBLEMS
    print(f"anchored head event {anchor.seq} hash {anchor.hash} (key {anchor.key_id}) to "
          f"{', '.join(t.where for t in anchors)}")
    return 0


def cmd_log_public_key(args: argparse.Namespace) -> int:
    """Print the chain keys' public halves: what an auditor checks anchors and packs with."""
    with _change_log() as log:
        keys = log.keys.public_keys()
    for key_id, public in keys.items():
        print(f"{key_id} ed25519 {public}")
    return 0


def cmd_log_new_key(args: argparse.Namespace) -> int:
    """Print a new chain key line, `ID:SECRET`."""
    try:
        print(new_key(args.key_id))
    except ChainKeyError as exc:
        raise CommandFailed(str(exc)) from None
    return 0


def cmd_log_export(args: argparse.Namespace) -> int:
    """Print one change's events as JSON."""
    with _change_log() as log:
        events = log.events(args.change_id)
    if not events:
        raise CommandFailed(f"no change {args.change_id!r} in the change log "
                            "(`changeflow changes` lists them)")
    print(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
    return 0


def cmd_log_purge(args: argparse.Namespace) -> int:
    """Delete events older than a date, keeping the retention period."""
    cutoff = datetime.combine(args.before, datetime.min.time(), tzinfo=UTC)
    with _change_log() as log:
        try:
            purged = log.purge(cutoff=cutoff, now=datetime.now(UTC), actor=args.actor)
        except RetentionError as exc:
            raise CommandFailed(str(exc)) from None
    print(f"purged {purged} event(s) before {args.before}; a checkpoint was recorded")
    return 0


def cmd_changes(args: argparse.Namespace) -> int:
    """List changes with category, state, outcome and incidents."""
    with _change_log() as log:
        records = log.changes()
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return 0
    print_changes(records)
    return 0


def cmd_obligations(args: argparse.Namespace) -> int:
    """List emergency obligations (policy section 5) and where each stands now."""
    settings = _settings()
    with _change_log() as log:
        records = log.changes(emergency=True)
    policy = load_config(settings.config_dir).policy
    rows = obligation_rows(records, datetime.now(UTC),
                           timedelta(hours=policy.emergency.remind_before_hours),
                           everything=args.all)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_obligations(rows)
    return 0


def _quarter(text: str) -> Quarter:
    try:
        return Quarter.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@contextmanager
def _adapters() -> Iterator[Adapters]:
    """The adapters the settings choose, closed afterwards; problems named."""
    settings = _settings()
    try:
        adapters = build(settings)
    except ConfigError as exc:
        raise CommandFailed(f"configuration has problems (run `changeflow check-config`):\n"
                            f"{exc}") from None
    try:
        yield adapters
    finally:
        adapters.close()


def cmd_report(args: argparse.Namespace) -> int:
    """Write a quarter's report and evidence pack (what the quarterly-report flow does)."""
    from tasks.reporting import produce_report

    with _adapters() as a:
        report, written = produce_report(a, args.quarter, args.out)
    print(f"report {args.quarter}: {len(report.changes)} change(s), chain "
          f"{'ok' if report.chain['ok'] else 'BROKEN'}, head {report.chain['head_hash']}")
    for name, path in written.items():
        print(f"  {name}: {path}")
    return 0 if report.chain["ok"] else EXIT_PROBLEMS


def cmd_evidence(args: argparse.Namespace) -> int:
    """Write an auditor's reproducible sample of a quarter's changes, one page each."""
    from tasks.reporting import produce_sample

    with _adapters() as a:
        pages = produce_sample(a, args.quarter, args.sample, args.out, seed=args.seed)
    print(f"sampled {max(len(pages) - 1, 0)} change(s) of {args.quarter} into {args.out}")
    for page in pages:
        print(f"  {page}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo end to end on embedded defaults."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")  # the demo prints its own story
    from changeflow.demo import run_demo

    return run_demo()


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve every deployment in prefect.yaml from this process."""
    from flows.serve import serve_all

    serve_all(limit=args.limit)
    return 0


def cmd_prepare_server(args: argparse.Namespace) -> int:
    """Create what the flows need on the server at PREFECT_API_URL (for workers)."""
    from prefect.settings import PREFECT_API_URL

    from changeflow.up import prepare_server

    if not PREFECT_API_URL.value():
        raise CommandFailed("PREFECT_API_URL is not set: point it at the Prefect server "
                            "(e.g. http://127.0.0.1:4200/api)")
    done = prepare_server(_settings())
    for line in done:
        print(f"created {line}")
    if not done:
        print("nothing to create: the concurrency limits and blocks exist")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """A Prefect server and every deployment, until Ctrl-C."""
    from changeflow.up import AuthFileError, run_up

    try:
        return run_up(port=args.port, limit=args.limit)
    except AuthFileError as exc:
        raise CommandFailed(str(exc)) from None


def _date(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2023-01-31") from None


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="changeflow", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("check-config", help="validate policy, roster and services") \
        .set_defaults(func=cmd_check_config)
    log = sub.add_parser("log", help="the change log").add_subparsers(
        dest="log_command", required=True, metavar="LOG_COMMAND")
    verify = log.add_parser("verify", help="check the chain, its records and kept heads")
    verify.add_argument("--fold", action="store_true",
                        help="also fold every change from its events and compare")
    verify.add_argument("--expect", type=expected_head, action="append", default=[],
                        metavar="SEQ:HASH", help="a head kept elsewhere that the chain must "
                        "still hold (repeatable)")
    verify.add_argument("--anchors", type=Path, nargs="?", const=_ANCHORS, default=None,
                        metavar="FILE", help="check every signed anchor in FILE (default: "
                        "CHANGEFLOW_ANCHOR_FILE)")
    verify.set_defaults(func=cmd_log_verify)
    log.add_parser("anchor", help="publish the chain's signed head to the anchor file") \
        .set_defaults(func=cmd_log_anchor)
    log.add_parser("public-key", help="print the chain keys' public halves") \
        .set_defaults(func=cmd_log_public_key)
    new = log.add_parser("new-key", help="print a new chain key ID:SECRET")
    new.add_argument("key_id")
    new.set_defaults(func=cmd_log_new_key)
    export = log.add_parser("export", help="print a change's events as JSON")
    export.add_argument("change_id")
    export.set_defaults(func=cmd_log_export)
    purge = log.add_parser("purge", help="delete events older than the retention period")
    purge.add_argument("--before", type=_date, required=True, help="YYYY-MM-DD (UTC)")
    purge.add_argument("--actor", required=True, help="your roster id, recorded")
    purge.set_defaults(func=cmd_log_purge)
    changes = sub.add_parser("changes", help="list changes")
    changes.add_argument("--json", action="store_true", help="print JSON")
    changes.set_defaults(func=cmd_changes)
    report = sub.add_parser("report", help="write a quarter's report and evidence pack")
    report.add_argument("--quarter", type=_quarter, required=True, help="like 2026Q3")
    report.add_argument("--out", type=Path, required=True, help="folder for the files")
    report.set_defaults(func=cmd_report)
    evidence = sub.add_parser("evidence", help="an auditor's sample: one page per change")
    evidence.add_argument("--quarter", type=_quarter, required=True, help="like 2026Q3")
    evidence.add_argument("--sample", type=int, default=25, help="how many (default 25)")
    evidence.add_argument("--seed", default="", help="changes the sample, reproducibly")
    evidence.add_argument("--out", type=Path, default=Path("evidence"),
                          help="folder for the pages (default ./evidence)")
    evidence.set_defaults(func=cmd_evidence)
    obligations = sub.add_parser("obligations",
                                 help="emergency obligations still open (--all: every one)")
    obligations.add_argument("--all", action="store_true", help="include the ones done")
    obligations.add_argument("--json", action="store_true", help="print JSON")
    obligations.set_defaults(func=cmd_obligations)
    sub.add_parser("migrate", help="create the change log's schema as its owner and grant "
                   "the flows' role").set_defaults(func=cmd_migrate)
    sub.add_parser("demo", help="run the demo").set_defaults(func=cmd_demo)
    serve = sub.add_parser("serve", help="serve every prefect.yaml deployment (PREFECT_API_URL)")
    serve.add_argument("--limit", type=int, default=4,
                       help="flow-run processes at once (each is a Python process; default 4)")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("prepare-server", help="create the per-service concurrency limits and "
                   "the secret blocks on the server at PREFECT_API_URL").set_defaults(
        func=cmd_prepare_server)
    up = sub.add_parser("up", help="start a Prefect server and serve every deployment "
                        "(make serve)")
    up.add_argument("--port", type=int, default=4200, help="the server's port (default 4200)")
    up.add_argument("--limit", type=int, default=4, help="flow-run processes at once")
    up.set_defaults(func=cmd_up)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `changeflow` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CommandFailed as exc:
        print(f"changeflow: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE


if __name__ == "__main__":
    sys.exit(main())
