"""Command line for the local services and sample data: ``python -m thrive_dev COMMAND``.

The Makefile calls it; every expected failure prints one line saying what to do, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date

from thrive_dev import airflow_ui, bench, demo, localdb, sample_data, services


def _generate(args: argparse.Namespace) -> list[str]:
    uri = args.db or os.environ.get("THRIVE_DB_URI") or services.load_env().get("THRIVE_DB_URI")
    if not uri:
        raise services.ServiceError("THRIVE_DB_URI is not set: run `make up`, or pass --db")
    config = sample_data.SampleConfig(
        start=args.date,
        days=args.days,
        events=args.events,
        accounts=args.accounts,
        recipients_per_account=args.recipients,
        messages_per_account=args.messages,
        bad_share=args.bad_share,
        seed=args.seed,
    )
    started = time.perf_counter()
    stats = sample_data.load(uri, config)
    seconds = time.perf_counter() - started
    seeded = services.reseed_sandbox(uri)
    events = sum(stats.rows[f"thrive.{t}"] for t in sample_data.SOURCE_TABLE.values())
    lines = [
        f"sample data: {events:,} events from {config.start} for {config.days} day(s), seed {config.seed}, "
        f"loaded in {seconds:.1f} s ({events / max(seconds, 1e-9):,.0f} events/s)"
    ]
    lines += [f"  {table:<29} {n:>10,}" for table, n in stats.rows.items()]
    if seeded:
        lines.append(f"salesforce sandbox: seeded with {seeded:,} Contacts and Leads")
    return lines


def _parser() -> argparse.ArgumentParser:
    """The commands and their options, apart from running them, so that each reads on its own."""
    parser = argparse.ArgumentParser(prog="python -m thrive_dev", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the local services, apply schemas, write .local/env.sh")
    commands.add_parser("down", help="stop the local services and `make airflow` (data stays in .local/)")
    commands.add_parser("airflow", help="the Airflow UI, scheduler, dag-processor and triggerer on the local services")
    gen = commands.add_parser("generate", help="replace the thrive tables with deterministic sample data")
    gen.add_argument("--date", type=date.fromisoformat, required=True, help="first day (UTC), YYYY-MM-DD")
    gen.add_argument("--days", type=int, default=1)
    gen.add_argument("--events", type=int, default=10_000, help="events over the whole range")
    gen.add_argument("--accounts", type=int, default=4)
    gen.add_argument("--recipients", type=int, default=500, help="recipients per account")
    gen.add_argument("--messages", type=int, default=20, help="messages per account")
    gen.add_argument("--bad-share", type=float, default=0.05, help="share of events built to fail or be skipped")
    gen.add_argument("--seed", type=int, default=20261126)
    gen.add_argument("--db", help="libpq URI (default: $THRIVE_DB_URI)")
    dem = commands.add_parser("demo", help="sample data for DATE, run the DAG for that day, print the report")
    dem.add_argument("--date", type=date.fromisoformat, required=True, help="the day to process (UTC)")
    dem.add_argument("--events", type=int, default=20_000)
    ben = commands.add_parser("bench", help="our DAG vs the floor vs the provider's bulk operator, one day")
    ben.add_argument("--rows", type=int, default=200_000, help="events in the day")
    ben.add_argument("--date", type=date.fromisoformat, required=True, help="the day (UTC) the rows fall on")
    ben.add_argument("--no-baseline", action="store_true", help="skip c, the provider's operator")
    ben.add_argument("--timeout", type=float, default=3600, help="seconds each DAG run may take")
    ben.add_argument("--only", default="abcgo", help="which of a, b, c, g (by parent), o (four orgs) to run")
    ben.add_argument("--profile", action="store_true", help="sample a with py-spy (.local/bench/profile-a.txt)")
    ben.add_argument("--no-slow-org", action="store_true", help="skip a and b again under the slow-org pace")
    ben.add_argument("--no-grouping", action="store_true", help="skip g, a with and without grouping by parent")
    ben.add_argument("--no-orgs", action="store_true", help="skip o, the day over four orgs against one")
    return parser


def _run(args: argparse.Namespace) -> list[str]:
    """Run the chosen command; its lines to print. An expected failure raises, for :func:`main` to report."""
    if args.command == "up":
        return services.up()
    if args.command == "down":
        stopped = airflow_ui.stop(services.AIRFLOW_HOME)
        lines = [f"airflow: {'stopped ' + ', '.join(stopped) if stopped else 'was not running'}"]
        return lines + services.down()
    if args.command == "airflow":
        return airflow_ui.up()
    if args.command == "bench":
        skipped = {"c"} if args.no_baseline else set()
        skipped |= {"g"} if args.no_grouping else set()
        skipped |= {"o"} if args.no_orgs else set()
        return bench.table(
            bench.run(
                args.rows,
                args.date,
                only="".join(c for c in args.only if c not in skipped),
                timeout=args.timeout,
                profile=args.profile,
                slow_org=not args.no_slow_org,
            )
        )
    if args.command == "demo":
        return demo.run(args.date, args.events)
    return _generate(args)


def main(argv: list[str] | None = None) -> int:
    """Parse, run, print; the failures a developer can fix (services down, no DB URI) are one line and status 2."""
    args = _parser().parse_args(argv)
    try:
        lines = _run(args)
    except (localdb.LocalDbError, services.ServiceError, sample_data.SampleDataError) as err:
        print(f"thrive_dev {args.command}: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
