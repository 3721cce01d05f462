"""The admin web page (Settings → Workflows) served under ``/app`` by ``create_app``.

Modules, by job: :mod:`.install` (mounts the pages, the static files and the security headers on
an app), :mod:`.pages` (the routes: login, logout, list, detail, and their refreshable fragments),
:mod:`.views` (what is shown of an execution record), :mod:`.sessions` (server-side sessions and
their CSRF tokens; :mod:`stepwork.http.auth` accepts them), :mod:`.security` (Content-Security-Policy
and the login form's checks). ``templates/`` holds the Jinja2 pages, ``static/`` the CSS and the one
script. This package imports nothing on import, so :mod:`stepwork.http.auth` can use its sessions.
"""
