"""Drop repeated <script> entries from each page (a Sphinx extension of this book).

sphinx-thebe, which Jupyter Book always loads, adds its inline configuration script
(``const THEBE_JS_URL = ...``) twice to every page; the second copy throws "Identifier
'THEBE_JS_URL' has already been declared" in the browser's console. This keeps the first
of identical scripts (same file, same inline body, same attributes; the copies differ
only in their priority).
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        filename = str(getattr(script, "filename", script) or "")  # None or "": inline
        key = (filename, tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    # early: Sphinx stops calling html-page-context handlers once one returns a template
    app.connect("html-page-context", _dedupe, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
