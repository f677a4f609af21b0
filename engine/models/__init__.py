"""Models: training rows and labels, walk-forward evaluation, the four members, ONNX export,
quantization, the fused ensemble graph and its runtime, the registry, drift and adaptation.

Inference (``runtime``, ``registry``, ``drift``) needs only onnxruntime; training and export
(``train``, ``learners``, ``export``, ``lstm``) need the ``train`` extra (torch, scikit-learn,
XGBoost, skl2onnx, onnxmltools, Optuna)."""
