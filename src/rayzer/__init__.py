"""rayzer: self-supervised multi-view 3D vision (RayZer, LVSM, E-RayZer, NAS3R).

Conventions shared by every module (the docstrings' "package conventions"):

* cameras are OpenCV (x right, y down, z forward) camera-to-world 4×4 matrices; each data reader
  converts its source's convention once, at the edge;
* intrinsics are ``(fx, fy, cx, cy)`` in pixels at the boundary (principal point from the image
  corner, pixel centres at ``+0.5``) and normalised by the image size (``fx / W``, ``fy / H``,
  ``cx / W``, ``cy / H``) inside the models;
* images are float tensors in ``[0, 1]`` of shape ``(B, V, 3, H, W)``; depth is camera z-depth;
* a batch is a dict with the keys ``image``, ``c2w``, ``K``, ``depth`` (when known) and
  ``index`` (frame numbers);
* rotations are predicted in the 6-D representation (Gram-Schmidt); quaternions only at I/O.
"""

__version__ = "0.1.0"
