"""Inference on your own captures: ``rayzer infer`` and the :mod:`rayzer.api` functions.

* :mod:`rayzer.infer.model` — load the bundled model or a checkpoint.
* :mod:`rayzer.data.images` — photos / video frames → model input views (resize / crop policy).
* :mod:`rayzer.infer.predict` — cameras, latent scene and renders for one capture.
* :mod:`rayzer.infer.trajectory` — novel-view paths (through the cameras, spiral).
* :mod:`rayzer.infer.outputs` — exports (scene folder, COLMAP, nerfstudio), video, plot.
* :mod:`rayzer.infer.pipeline` — the whole ``rayzer infer`` run with timings.

Nothing is imported here, so importing one part stays cheap.
"""
