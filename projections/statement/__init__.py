"""The yearly statement: view objects built from the ledger at a cut (`view`), charts
(`charts`), the HTML template and its rendering, and the PDF from the same HTML
(`render`). Heavy libraries (Jinja2, Babel, matplotlib, WeasyPrint) are imported by
these modules only: import them inside the command that needs them."""
