"""The pages people look at, served by ``clarion serve`` from the same origin: the inbox
widget (``<clarion-inbox>``), the preference centre, the unsubscribe page and the operator
dashboard. No build step: plain HTML, CSS and JavaScript files in ``static/``, no inline
script or style, a strict Content-Security-Policy on every page (``security``), and every
piece of notification content put on the page as text, never as markup."""
