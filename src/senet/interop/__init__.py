"""Weights in and out (see docs/interop.md).

- ``checkpoint``: senet's safetensors format with metadata; ``load_weights``/``load_model``
- ``convert``: key maps from the original release, timm and torchvision, ``convert_file``
- ``inference``: the paper's evaluation transform and top-k prediction
- ``export``: ONNX / TorchScript / ``torch.export`` with a dynamic batch, checked against PyTorch
- ``detection``: SE-ResNet-FPN backbones and Faster R-CNN from torchvision's parts
- ``maps_inception``: timm's Inception-ResNet-v2 key names
"""
