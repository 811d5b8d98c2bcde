"""Entry point: `flask --app run …`, gunicorn `run:app`, or `python run.py` for a local server."""
import os

from app import create_app

app = create_app()

if __name__ == "__main__":
    from app.sync.scheduler import is_reloader_watcher, start_embedded

    # With the debug reloader, the watcher process only restarts its child, which serves and schedules.
    if not is_reloader_watcher(app.debug):
        start_embedded(app)
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5001")))
