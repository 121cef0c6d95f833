"""The app gunicorn serves, configured from the environment."""

import logging

from ingest import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
app = create_app()
