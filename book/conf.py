# Sphinx configuration of the facelab book (`make book`; the source tree is written by facelab.book).
# Everything it needs comes from the lock's packages: no download while building.
project = "facelab"
author = "facelab contributors"
html_title = "facelab: papers rebuilt as notebooks"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# The executed copies are rendered as stored: building never runs a notebook.
nb_execution_mode = "off"
# Widgets were turned into static images (facelab.book.static_widgets): load no widget JavaScript.
nb_ipywidgets_js = {}
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "home_page_in_toc": True,
    # the results page's table needs the width more than an in-page table of contents
    "secondary_sidebar_items": {"**": ["page-toc"], "results": []},
}
html_show_sourcelink = False
html_copy_source = False
# A notebook's own headings may skip levels (e.g. a title then ###): not an error for the book.
suppress_warnings = ["myst.header"]
html_static_path = ["_static"]
html_css_files = ["facelab.css"]
