"""The networks: the U-Net (plain, or on a ResNet or an ImageNet-pretrained EfficientNet-Lite
encoder) made by ``create_model``, checkpoints, inference tuning and ONNX export. The
shipped starter model lives in ``weights/``, apart from the code."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "checkpoint": ("FORMAT", "VERSION", "STARTER", "Checkpoint", "save", "resolve", "load", "describe", "build_model"),
    "efficientnet": (
        "BN_EPS", "Stage", "Variant", "VARIANTS", "FEATURE_STAGES", "same_pad", "conv_bn", "MBConv",
        "EfficientNetLite", "key_map", "weights_file", "pretrained_state", "adapt_stem", "load_pretrained",
    ),
    "encoders": ("Upsample", "expanding_path", "ResNetUNet", "LiteUNet"),
    "inference": ("fuse_for_inference", "ConvReLU", "CompiledModel", "compile_for_inference", "onednn_pointwise"),
    "onnx": ("OPSET", "OnnxResult", "export_onnx"),
    "registry": ("ARCHITECTURES", "create_model", "config_from_dict", "config_to_dict"),
    "unet": ("NORMS", "UNetConfig", "DoubleConv", "Down", "Up", "UNet"),
})
