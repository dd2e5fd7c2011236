"""The SimSpine dataset from Human3.6M: readers (:mod:`.h36m`), per-sequence processing
(:mod:`.sequence`), the HDF5 store in the official release's layout (:mod:`.store`), the Dask
build (:mod:`.build`), exports (:mod:`.export`) and checks (:mod:`.validate`)."""
