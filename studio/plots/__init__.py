"""pyqtgraph curves: created once, fed from numpy buffers by setData on a timer, downsampled."""
