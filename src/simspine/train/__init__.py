"""Training top-down SpineTrack-37 2D keypoint models (SpinePose/RTMPose form) and their ONNX export.

``config`` reads the TOML that states every choice; ``model`` is the network (plain-torch backbone,
SimCC head, or a SpinePose ONNX converted to torch); ``crop`` the top-down affine geometry and SimCC
targets; ``augment`` the three-stage curriculum of the SimSpine paper (Supplementary A);
``coco_data`` COCO-keypoints datasets; ``loop`` training, checkpoints, resume and evaluation;
``export`` the ONNX file that ``simspine detect --backend spinepose --pose-model FILE`` runs;
``cli`` the ``simspine train 2d`` subcommand. Needs torch (``pip install -e ".[train]"``).
"""
