"""WSGI entry point of the gateway: ``gunicorn -c web/gunicorn.conf.py web.wsgi:app``."""

from spawn_celery.gateway import create_app

app = create_app()
