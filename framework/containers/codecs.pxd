# The C layout of the codecs (codecs.py, pure-Python mode): encode / decode as C methods.
cdef class _Codec:
    cdef readonly object size, type_id, label
    cdef readonly bint word
    cpdef bytes encode(self, object value)
    cpdef object decode(self, object buf, Py_ssize_t offset, Py_ssize_t length)

cdef class _StructCodec(_Codec):
    cdef readonly object _struct, _ctype

cdef class _CtypesCodec(_Codec):
    cdef readonly object _ctype
    cdef readonly bint _simple

cdef class _StrCodec(_Codec):
    pass

cdef class _BytesCodec(_Codec):
    pass
