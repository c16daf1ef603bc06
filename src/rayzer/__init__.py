"""rayzer: self-supervised multi-view 3D vision (RayZer, LVSM, E-RayZer, NAS3R).

Conventions shared by every module (see DESIGN.md §3):

* cameras are OpenCV (x right, y down, z forward) camera-to-world 4×4 matrices;
* intrinsics are ``(fx, fy, cx, cy)`` in pixels at the boundary and normalised by the image
  size (``fx / W``, ``fy / H``, ``cx / W``, ``cy / H``) inside the models;
* images are float tensors in ``[0, 1]`` of shape ``(B, V, 3, H, W)``.
"""

__version__ = "0.1.0"
