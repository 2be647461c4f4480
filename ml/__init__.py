"""Pure ML for LesionTrack: segmentation, classification, ABCD features, evaluation.

Nothing in this package imports Django; the workers call it through ``lesions.services``.
TensorFlow is imported lazily by the modules that need it so that light helpers
(features, metrics, preprocessing on numpy arrays) import fast.
"""
