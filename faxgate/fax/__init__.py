"""The fax engine: T.30 over spandsp, class F TIFF handling and call results.

Import the submodules directly. `faxgate.fax.result` and `faxgate.fax.tiff`
do not load spandsp; `spandsp`, `session` and `line` do.
"""
