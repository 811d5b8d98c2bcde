"""Money: what the household paid, earned and saved, to the cent of Amber's bill.

`arithmetic` is pure (no Flask, database or HTTP): usage rows -> bill per billing day, Tesla energy rows +
billed prices -> the battery's saving, and the money of force sessions and export-protection windows.
`importer` fetches Amber's metered usage and Tesla's calendar_history into the database; `service` reads
them back for the page, the API, the CSV and the CLI. Routes and CLI commands stay thin.
"""
