/* One pass over a block of embedding rows for collapselab.metrics.Moments.
 *
 * For each row z_i (float32 or float64) it writes, into the float64 block buffer A of
 * row stride d + 3, the shifted row b_i = z_i - s and the three extra columns
 * [1, 1/|z_i|, rho_i/|z_i|] (rho_i = 1/|z_i| - 1/|s|, 0 for zero rows) that the syrk
 * A^T A turns into column sums and unit-row sums; it also returns |z_i|^2 and the
 * weighted squares sum_i (b_ij / |z_i|)^2 of the block. The numpy path in moments.py
 * computes the same numbers in five passes (copy, norms, shift, square, product); here
 * the row is read once from memory and the rest happens in L1, so the row statistics
 * cost next to nothing beyond the copy the spectrum needs anyway. Everything is
 * accumulated in float64; the GIL is released, so Python threads run blocks in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

#define ROW_KERNEL(NAME, T)                                                               \
    CLONES static void NAME(const T *x, Py_ssize_t k, Py_ssize_t d, const double *s,      \
                            double inv_s_norm, double *a, double *sq, double *wsq,        \
                            int stats) {                                                  \
        const Py_ssize_t w = d + 3;                                                       \
        for (Py_ssize_t j = 0; j < d; j++) wsq[j] = 0.0;                                  \
        for (Py_ssize_t i = 0; i < k; i++) {                                              \
            const T *xi = x + i * d;                                                      \
            double *ai = a + i * w;                                                       \
            double acc = 0.0;                                                             \
            if (!stats) { /* the spectrum alone: shift and the column of ones */          \
                _Pragma("omp simd") for (Py_ssize_t j = 0; j < d; j++)                    \
                    ai[j] = (double)xi[j] - s[j];                                         \
                ai[d] = 1.0;                                                              \
                ai[d + 1] = ai[d + 2] = 0.0;                                              \
                continue;                                                                 \
            }                                                                             \
            _Pragma("omp simd reduction(+ : acc)") for (Py_ssize_t j = 0; j < d; j++) {   \
                double v = (double)xi[j];                                                 \
                acc += v * v;                                                             \
                ai[j] = v - s[j];                                                         \
            }                                                                             \
            sq[i] = acc;                                                                  \
            double inv = acc > 0.0 ? 1.0 / sqrt(acc) : 0.0;                               \
            double rho = acc > 0.0 ? inv - inv_s_norm : 0.0;                              \
            ai[d] = 1.0;                                                                  \
            ai[d + 1] = inv;                                                              \
            ai[d + 2] = inv * rho;                                                        \
            double q = inv * inv;                                                         \
            _Pragma("omp simd") for (Py_ssize_t j = 0; j < d; j++) {                      \
                double b = ai[j];                                                         \
                wsq[j] += q * b * b;                                                      \
            }                                                                             \
        }                                                                                 \
    }

ROW_KERNEL(rows_f32, float)
ROW_KERNEL(rows_f64, double)

static int get(PyObject *obj, Py_buffer *view, int writable, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (view->itemsize == 8 && view->format && (view->format[0] == 'd' ||
        ((view->format[0] == '<' || view->format[0] == '=') && view->format[1] == 'd')))
        return 0;
    if (view->itemsize == 4 && view->format && (view->format[0] == 'f' ||
        ((view->format[0] == '<' || view->format[0] == '=') && view->format[1] == 'f')))
        return 0;
    PyBuffer_Release(view);
    PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous float32/float64 array", what);
    return -1;
}

/* shift_rows(x, k, d, s, inv_s_norm, a, sq, wsq, stats=1): x (k, d) float32/float64;
 * s (d,), a (k, d+3), sq (k,), wsq (d,) float64, the last three written. stats=0 writes
 * only the shifted rows and the column of ones (the spectrum alone, for benchmarks). */
static PyObject *shift_rows(PyObject *self, PyObject *args) {
    PyObject *ox, *os, *oa, *osq, *owsq;
    double inv_s_norm;
    Py_ssize_t k, d;
    int stats = 1;
    if (!PyArg_ParseTuple(args, "OnnOdOOO|p", &ox, &k, &d, &os, &inv_s_norm, &oa, &osq, &owsq,
                          &stats))
        return NULL;
    Py_buffer x, s, a, sq, wsq;
    if (get(ox, &x, 0, "x") < 0) return NULL;
    if (get(os, &s, 0, "s") < 0) goto fail_x;
    if (get(oa, &a, 1, "a") < 0) goto fail_s;
    if (get(osq, &sq, 1, "sq") < 0) goto fail_a;
    if (get(owsq, &wsq, 1, "wsq") < 0) goto fail_sq;
    if (k < 0 || d < 1 || x.len != k * d * x.itemsize || s.itemsize != 8 || s.len != d * 8 ||
        a.itemsize != 8 || a.len < k * (d + 3) * 8 || sq.itemsize != 8 || sq.len < k * 8 ||
        wsq.itemsize != 8 || wsq.len != d * 8) {
        PyErr_SetString(PyExc_ValueError, "shift_rows: buffer sizes do not match (k, d)");
        goto fail_all;
    }
    Py_BEGIN_ALLOW_THREADS
    if (x.itemsize == 4)
        rows_f32((const float *)x.buf, k, d, (const double *)s.buf, inv_s_norm,
                 (double *)a.buf, (double *)sq.buf, (double *)wsq.buf, stats);
    else
        rows_f64((const double *)x.buf, k, d, (const double *)s.buf, inv_s_norm,
                 (double *)a.buf, (double *)sq.buf, (double *)wsq.buf, stats);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&wsq);
    PyBuffer_Release(&sq);
    PyBuffer_Release(&a);
    PyBuffer_Release(&s);
    PyBuffer_Release(&x);
    Py_RETURN_NONE;
fail_all:
    PyBuffer_Release(&wsq);
fail_sq:
    PyBuffer_Release(&sq);
fail_a:
    PyBuffer_Release(&a);
fail_s:
    PyBuffer_Release(&s);
fail_x:
    PyBuffer_Release(&x);
    return NULL;
}

CLONES static void rank1_kernel(double *a, Py_ssize_t n, Py_ssize_t lda, double alpha,
                                const double *x) {
    for (Py_ssize_t j = 0; j < n; j++) {
        double *aj = a + j * lda;
        const double t = alpha * x[j];
        _Pragma("omp simd") for (Py_ssize_t i = 0; i < n; i++) aj[i] += t * x[i];
    }
}

/* rank1(a, n, lda, alpha, x): a[j, i] += (alpha x_j) x_i for i, j < n, in place, where
 * row j of the (n, n) block starts at a + j * lda (a float64, C-contiguous, at least
 * (n - 1) lda + n long; x float64 (n,)). The rank-1 corrections of the Chan et al.
 * merge, one pass over the block, without scipy's BLAS (whose import costs more than a
 * whole small check). */
static PyObject *rank1(PyObject *self, PyObject *args) {
    PyObject *oa, *ox;
    Py_ssize_t n, lda;
    double alpha;
    if (!PyArg_ParseTuple(args, "OnndO", &oa, &n, &lda, &alpha, &ox)) return NULL;
    Py_buffer a, x;
    if (get(oa, &a, 1, "a") < 0) return NULL;
    if (get(ox, &x, 0, "x") < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    if (n < 0 || lda < n || a.itemsize != 8 || x.itemsize != 8 || x.len != n * 8 ||
        (n > 0 && a.len < ((n - 1) * lda + n) * 8)) {
        PyBuffer_Release(&x);
        PyBuffer_Release(&a);
        PyErr_SetString(PyExc_ValueError, "rank1: buffer sizes do not match (n, lda)");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rank1_kernel((double *)a.buf, n, lda, alpha, (const double *)x.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&x);
    PyBuffer_Release(&a);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"shift_rows", shift_rows, METH_VARARGS,
     "shift_rows(x, k, d, s, inv_s_norm, a, sq, wsq, stats=True): one pass over a block."},
    {"rank1", rank1, METH_VARARGS,
     "rank1(a, n, lda, alpha, x): a[j, i] += (alpha x_j) x_i for i, j < n, in place."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rows", NULL, -1, methods};

PyMODINIT_FUNC PyInit__rows(void) { return PyModule_Create(&module); }
