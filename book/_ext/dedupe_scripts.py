"""Each script once per page.

sphinx-thebe (and sphinx-togglebutton) add their inline configuration scripts every time Sphinx
reads the documents, and a Jupyter Book build reads them twice. Every page then declared the same
constants twice, and the browser reported "Identifier 'THEBE_JS_URL' has already been declared".
The bug is upstream (sphinx-thebe 0.3.1). This extension drops exact repeats from each page's
script list, in place, before the page is rendered.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for js in scripts:
        # an inline script's filename is None from one caller and "" from another: the same script
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted((getattr(js, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=999)   # last: after every handler that adds scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
