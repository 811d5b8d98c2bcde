"""`flask money import|report`: thin over app.money.importer and app.money.service."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app import clock
from app.households.cli import household_or_fail
from app.money.arithmetic import dollars, kwh3, nem_date
from app.money.importer import ImportFailed, import_household
from app.money.service import money_view, parse_range

money_cli = AppGroup("money", help="What a household paid, earned and saved (Amber usage, Tesla energy history).")


@money_cli.command("import")
@click.option("--user", "email", required=True, help="The household this account belongs to (the one it owns first).")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 90), help="Billing days back, today included (Amber keeps 90).")
def import_command(email: str, days: int) -> None:
    """Import Amber's metered usage (a week a request, within Amber's rate budget) and Tesla's energy history."""
    household = household_or_fail(email)
    try:
        result = import_household(household, days, clock.now(), say=click.echo)
    except ImportFailed as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Done: {result.usage_seen} usage rows read, {result.usage_written} new or changed; "
        f"{result.energy_written} energy rows new or changed; {result.requests} requests."
    )
    if result.energy_note:
        click.echo(f"Note: {result.energy_note}", err=True)


@money_cli.command("report")
@click.option("--user", "email", required=True, help="The household this account belongs to.")
@click.option("--from", "first", help="First billing day, YYYY-MM-DD (default: 6 days before --to).")
@click.option("--to", "last", help="Last billing day, YYYY-MM-DD (default: today).")
@click.option("--json", "as_json", is_flag=True, help="JSON: days and total, money in dollars.")
def report_command(email: str, first: str | None, last: str | None, as_json: bool) -> None:
    """The bill per Amber billing day: import kWh and cost, export kWh and earnings, net."""
    household = household_or_fail(email)
    now = clock.now()
    try:
        start, end = parse_range(first, last, nem_date(now))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    view = money_view(household, start, end, now)
    if as_json:
        click.echo(json.dumps(view.json(), indent=2))
        return
    click.echo(f"{'date':<10}  {'import kWh':>10}  {'import $':>9}  {'export kWh':>10}  {'export $':>9}  {'net $':>9}")

    def line(label: str, bill) -> str:
        return (
            f"{label:<10}  {kwh3(bill.import_kwh):>10}  {dollars(bill.import_cost):>9}  {kwh3(bill.export_kwh):>10}  "
            f"{dollars(bill.export_earnings):>9}  {dollars(bill.net):>9}" + ("  (estimated)" if bill.estimated else "")
        )

    for day, bill in view.days.items():
        click.echo(line(day.isoformat(), bill))
    click.echo(line("total", view.total))
    if view.fixed:
        click.echo(f"Fixed costs (not in net): ${dollars(view.total.fixed)}")
    if view.saved_total is not None:
        click.echo(f"Battery saved: ${dollars(view.saved_total)}")
