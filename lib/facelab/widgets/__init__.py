"""ipywidgets front-ends. The callbacks are plain functions (tested headless); the widget
classes only wire them to controls.

* :mod:`facelab.widgets.au_heatmap` - the AU heatmap explorer of notebook 05.
* :mod:`facelab.widgets.avatar_editor` - the avatar editor of notebook 06 (expression, identity,
  colour and view sliders; a brush that paints the shared UV texture).
"""
from .au_heatmap import (AU_NAMES, AUHeatmapWidget, Face, FaceSource, HeatmapState, cam_panels, face_from_upload,
                         heatmap_for, load_models, overlay_png, render, select_face, set_blur, set_ellipse_scale,
                         toggle_au)
from . import avatar_editor

__all__ = ["AU_NAMES", "AUHeatmapWidget", "Face", "FaceSource", "HeatmapState", "cam_panels", "face_from_upload",
           "heatmap_for", "load_models", "overlay_png", "render", "select_face", "set_blur", "set_ellipse_scale",
           "toggle_au", "avatar_editor"]
from . import listener_player
