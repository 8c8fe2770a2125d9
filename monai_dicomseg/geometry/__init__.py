"""Patient/slide geometry on numpy only: affines (LPS), sorting, volumes, grid mapping.

Never imports torch, MONAI, pydicom or ``codec/`` (datasets are read by duck
typing; ``tests/test_layering.py`` enforces it). Modules:

* ``tolerances`` — the one table of named geometric tolerances;
* ``affine`` — affines <-> Image Plane attributes, slice spacing/normal checks;
* ``orientation``, ``sorting``, ``padding``, ``channels`` — helpers of ``Volume``;
* ``grid_mapping`` — the primitive: how one voxel grid re-indexes onto another;
* ``grid_placement`` (SEG onto a reference grid), ``grid_plan`` (model output onto
  the source series), ``matching`` (``Volume.match_geometry``) — planners on it;
* ``correspondence`` — the writers' rule: does a model grid belong on the source series?
* ``volume_base``, ``volume`` — ``Volume`` / ``VolumeGeometry``;
* ``series`` — ``get_volume_from_series`` and common-attribute checks;
* ``slice_grid`` — sheared stacks, gaps and irregular spacing (``irregular_slices``);
* ``sheared`` — ``ShearedVolume`` / ``ShearedVolumeGeometry`` (gantry tilt, exactly).
"""
