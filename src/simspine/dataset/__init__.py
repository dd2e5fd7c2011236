"""The SimSpine dataset from Human3.6M: readers (:mod:`.h36m`), per-sequence processing
(:mod:`.sequence`), the HDF5 store in the official release's layout (:mod:`.store`), the Dask
build (:mod:`.build`), 2D detections from an npz (:mod:`.spine2d_npz`), exports (:mod:`.export`),
checks (:mod:`.validate`) and a PyTorch ``Dataset`` over the store (:mod:`.torch_dataset`, the one
module that imports torch)."""
