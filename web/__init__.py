"""The read side: a JSON API and pages over the training database, for people."""

from __future__ import annotations

from flask import Flask

from ingest.settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Register the login, the read API and the pages on the ingester's app."""
    import store
    from web import api, auth, pages

    store.configure_replica(settings.database_read_url)
    auth.init_app(app, settings)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(pages.assets)
