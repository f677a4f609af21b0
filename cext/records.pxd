# The one place that turns a numpy record array into a C pointer on a hot path: a dtype
# identity check (every array the engine makes uses engine.schema's dtypes; an equal dtype
# made elsewhere passes too) and the buffer, in ~0.1 us. A typed memoryview checks the same
# through Cython's buffer-format parser, ~1.5 us per call for these packed structs.
from cext.schema cimport MarketRecord

cdef MarketRecord *market_ptr(object a, Py_ssize_t *n) except? NULL
