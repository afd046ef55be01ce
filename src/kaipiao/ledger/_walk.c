/* kaipiao.ledger._walk: the ledger verification loop in C.
 *
 * It does what kaipiao.ledger.chain and kaipiao.ledger.merkle do for one event at a time, for a
 * whole chain: check each event's sequence number, its link to the event before and its SHA3-256
 * hash over the v1 encoding (see chain.py), and grow the RFC 9162 Merkle frontier, taking the
 * tree head at the sizes of the checkpoints to check. Hashing is OpenSSL's; events come either
 * straight from an SQLite file (libsqlite3) or as PostgreSQL binary COPY data, so that no Python object
 * is made per event. The pure-Python loop in kaipiao.services.ledger stays as the reference and
 * the fallback; the tests run both on the same chains.
 *
 * A walk stops at the first event that does not check; `bad` then holds that event as a tuple
 * (seq, invoice_id, seller_id, type, time, payload, prev_hash, hash) for Python to name the
 * problem. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define HASH_LEN 32
#define HEX_LEN 64
#define MAX_PEAKS 64
#define N_FIELDS 8

static const char TAG[] = "kaipiao-event-v1\n";
static EVP_MD *sha3_256 = NULL;

typedef struct {
    const char *p; /* NULL: SQL NULL */
    Py_ssize_t n;
} Field;

typedef struct {
    PyObject_HEAD
    EVP_MD_CTX *ctx;
    long long expected;
    char prev[HEX_LEN];
    long long size;
    int npeaks;
    int heights[MAX_PEAKS];
    unsigned char peaks[MAX_PEAKS][HASH_LEN];
    long long *sizes; /* checkpoint sizes to take the head at, ascending */
    unsigned char (*heads)[HASH_LEN];
    Py_ssize_t nsizes, reached;
    PyObject *bad;
    char *buf; /* the event's encoding */
    size_t cap;
    char *carry; /* COPY data not yet processed */
    size_t carry_len, carry_cap;
    int copy_started, copy_ended;
    sqlite3 *db;
    sqlite3_stmt *stmt;
    int keep; /* keep leaf hashes instead of growing a tree */
    char *kept; /* 32-byte leaf hashes */
    size_t kept_len, kept_cap;
} Walker;

/* Make *buf hold at least `need` bytes (realloc: called without the GIL, where PyMem_* may not
 * be). */
static int grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t cap2 = *cap ? *cap : 4096;
    while (cap2 < need) cap2 *= 2;
    char *p = realloc(*buf, cap2);
    if (!p) return -1;
    *buf = p;
    *cap = cap2;
    return 0;
}

static void digest(EVP_MD_CTX *ctx, const void *data, size_t n, unsigned char *out) {
    EVP_DigestInit_ex(ctx, sha3_256, NULL);
    EVP_DigestUpdate(ctx, data, n);
    EVP_DigestFinal_ex(ctx, out, NULL);
}

static void node(EVP_MD_CTX *ctx, const unsigned char *left, const unsigned char *right,
                 unsigned char *out) {
    unsigned char in[1 + 2 * HASH_LEN];
    in[0] = 1;
    memcpy(in + 1, left, HASH_LEN);
    memcpy(in + 1 + HASH_LEN, right, HASH_LEN);
    digest(ctx, in, sizeof in, out);
}

static void head(Walker *w, unsigned char *out) {
    if (w->npeaks == 0) {
        digest(w->ctx, "", 0, out);
        return;
    }
    unsigned char acc[HASH_LEN];
    memcpy(acc, w->peaks[w->npeaks - 1], HASH_LEN);
    for (int i = w->npeaks - 2; i >= 0; i--) node(w->ctx, w->peaks[i], acc, acc);
    memcpy(out, acc, HASH_LEN);
}

/* Push a leaf's hash (H(0x00 || leaf)) onto the frontier; take the head if a checkpoint wants
 * it at the new size. */
static void push(Walker *w, const unsigned char *leaf_hash) {
    unsigned char acc[HASH_LEN];
    memcpy(acc, leaf_hash, HASH_LEN);
    int height = 0;
    while (w->npeaks && w->heights[w->npeaks - 1] == height) {
        node(w->ctx, w->peaks[w->npeaks - 1], acc, acc);
        w->npeaks--;
        height++;
    }
    w->heights[w->npeaks] = height;
    memcpy(w->peaks[w->npeaks], acc, HASH_LEN);
    w->npeaks++;
    w->size++;
    while (w->reached < w->nsizes && w->sizes[w->reached] <= w->size) {
        if (w->sizes[w->reached] == w->size) head(w, w->heads[w->reached]);
        w->reached++;
    }
}

static int add_leaf(Walker *w, const unsigned char *leaf) {
    unsigned char in[1 + HASH_LEN], out[HASH_LEN];
    in[0] = 0;
    memcpy(in + 1, leaf, HASH_LEN);
    digest(w->ctx, in, sizeof in, out);
    if (!w->keep) {
        push(w, out);
        return 0;
    }
    /* A later segment of a split walk: keep the leaf hashes for the first segment's tree. */
    if (grow(&w->kept, &w->kept_cap, w->kept_len + HASH_LEN) < 0) return -1;
    memcpy(w->kept + w->kept_len, out, HASH_LEN);
    w->kept_len += HASH_LEN;
    w->size++;
    return 0;
}

static char *put_field(char *p, Field f) {
    if (!f.p) {
        *p++ = '~';
        return p;
    }
    p += sprintf(p, "%zd:", f.n);
    memcpy(p, f.p, f.n);
    p += f.n;
    *p++ = ',';
    return p;
}

/* Check one event (its time already in hashed form) and add it; 0 if it checks, 1 if not,
 * -1 on memory exhaustion. Called without the GIL. */
static int step(Walker *w, long long seq, const Field *f) {
    /* f: invoice_id, seller_id, type, time, payload, prev_hash, hash */
    if (seq != w->expected || !f[5].p || f[5].n != HEX_LEN || memcmp(f[5].p, w->prev, HEX_LEN))
        return 1;
    if (!f[6].p || f[6].n != HEX_LEN) return 1;
    size_t need = sizeof TAG + 32 + 6 * 24;
    for (int i = 0; i < 6; i++) need += f[i].p ? (size_t)f[i].n : 0;
    if (grow(&w->buf, &w->cap, need) < 0) return -1;
    char *p = w->buf;
    memcpy(p, TAG, sizeof TAG - 1);
    p += sizeof TAG - 1;
    char num[24];
    int len = snprintf(num, sizeof num, "%lld", seq);
    p = put_field(p, (Field){num, len});
    for (int i = 0; i < 6; i++) p = put_field(p, f[i]);
    unsigned char out[HASH_LEN];
    digest(w->ctx, w->buf, (size_t)(p - w->buf), out);
    static const char hexd[] = "0123456789abcdef";
    for (int i = 0; i < HASH_LEN; i++)
        if (f[6].p[2 * i] != hexd[out[i] >> 4] || f[6].p[2 * i + 1] != hexd[out[i] & 15])
            return 1;
    if (add_leaf(w, out) < 0) return -1;
    memcpy(w->prev, f[6].p, HEX_LEN);
    w->expected = seq + 1;
    return 0;
}

static PyObject *text_or_none(Field f) {
    if (!f.p) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(f.p, f.n, "replace");
}

static PyObject *bad_tuple(PyObject *seq, const Field *f) {
    PyObject *t = PyTuple_New(N_FIELDS);
    if (!t) {
        Py_XDECREF(seq);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, seq);
    for (int i = 0; i < 7; i++) {
        PyObject *v = text_or_none(f[i]);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i + 1, v);
    }
    return t;
}

/* -- the object ------------------------------------------------------------------------------ */
static void close_sqlite(Walker *w) {
    if (w->stmt) sqlite3_finalize(w->stmt);
    if (w->db) sqlite3_close(w->db);
    w->stmt = NULL;
    w->db = NULL;
}

static void Walker_dealloc(Walker *w) {
    close_sqlite(w);
    if (w->ctx) EVP_MD_CTX_free(w->ctx);
    PyMem_Free(w->sizes);
    PyMem_Free(w->heads);
    free(w->buf);
    free(w->carry);
    free(w->kept);
    Py_XDECREF(w->bad);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static int Walker_init(Walker *w, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"sizes", "expected", "prev", "keep_leaves", NULL};
    PyObject *sizes;
    long long expected = 1;
    const char *prev = NULL;
    Py_ssize_t prev_len = 0;
    int keep = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$Ls#p", kwlist, &sizes, &expected, &prev,
                                     &prev_len, &keep))
        return -1;
    if (prev && prev_len != HEX_LEN) {
        PyErr_SetString(PyExc_ValueError, "prev must be a 64-character hex hash");
        return -1;
    }
    PyObject *seq = PySequence_Fast(sizes, "sizes must be a sequence of integers");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    w->sizes = PyMem_Calloc(n ? n : 1, sizeof(long long));
    w->heads = PyMem_Calloc(n ? n : 1, HASH_LEN);
    if (!w->sizes || !w->heads) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        w->sizes[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (w->sizes[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (i && w->sizes[i] <= w->sizes[i - 1]) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "sizes must be strictly ascending");
            return -1;
        }
    }
    Py_DECREF(seq);
    w->nsizes = n;
    w->expected = expected;
    if (prev) memcpy(w->prev, prev, HEX_LEN);
    else memset(w->prev, '0', HEX_LEN);
    w->keep = keep;
    /* the tree's leaves are counted from 1: a walk that starts later keeps its leaves */
    if (expected != 1 && !keep) {
        PyErr_SetString(PyExc_ValueError, "a walk that starts after event 1 must keep_leaves");
        return -1;
    }
    w->ctx = EVP_MD_CTX_new();
    if (!w->ctx) {
        PyErr_NoMemory();
        return -1;
    }
    w->bad = Py_NewRef(Py_None);
    return 0;
}

/* -- rows from Python (tests and small chains) ------------------------------------------------ */
static PyObject *Walker_feed_rows(Walker *w, PyObject *rows) {
    PyObject *it = PyObject_GetIter(rows);
    if (!it) return NULL;
    Py_ssize_t done = 0;
    PyObject *row;
    while (w->bad == Py_None && (row = PyIter_Next(it))) {
        PyObject *fast = PySequence_Fast(row, "a row must be a sequence");
        Py_DECREF(row);
        if (!fast) break;
        if (PySequence_Fast_GET_SIZE(fast) != N_FIELDS) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "a row has 8 fields");
            break;
        }
        PyObject **items = PySequence_Fast_ITEMS(fast);
        Field f[7];
        int typed = PyLong_CheckExact(items[0]);
        long long seq = typed ? PyLong_AsLongLong(items[0]) : -1;
        if (seq == -1 && PyErr_Occurred()) PyErr_Clear(), typed = 0;
        for (int i = 0; i < 7 && typed; i++) {
            PyObject *v = items[i + 1];
            if (v == Py_None) {
                f[i] = (Field){NULL, 0};
            } else if (PyUnicode_Check(v)) {
                f[i].p = PyUnicode_AsUTF8AndSize(v, &f[i].n);
                if (!f[i].p) PyErr_Clear(), typed = 0;
            } else {
                typed = 0;
            }
        }
        int r = typed ? step(w, seq, f) : 1;
        if (r < 0) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            break;
        }
        PyObject *bad = r ? PySequence_Tuple(fast) : NULL;
        Py_DECREF(fast);
        if (!r) {
            done++;
        } else if (bad) {
            Py_SETREF(w->bad, bad); /* ends the loop */
        } else {
            break; /* the tuple could not be made: its error is raised */
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromSsize_t(done);
}

/* -- PostgreSQL binary COPY ------------------------------------------------------------------- */
static const char COPY_SIGNATURE[11] = "PGCOPY\n\377\r\n\0";

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p) {
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* A PostgreSQL timestamptz (microseconds since 2000-01-01 UTC) in the hashed form,
 * `YYYY-MM-DDTHH:MM:SS.ffffffZ` (chain.time_text); days to a civil date as in H. Hinnant's
 * `civil_from_days`. */
static Py_ssize_t pg_time(int64_t us, char *out, size_t cap) {
    int64_t sec = us / 1000000, frac = us % 1000000;
    if (frac < 0) frac += 1000000, sec -= 1;
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) rem += 86400, days -= 1;
    int64_t z = days + 10957 + 719468; /* 1970-01-01 is day 10957 before 2000-01-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    return snprintf(out, cap, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%06lldZ", (long long)y,
                    (long long)m, (long long)d, (long long)(rem / 3600),
                    (long long)(rem / 60 % 60), (long long)(rem % 60), (long long)frac);
}

/* One tuple at p (n bytes available): its length in *used, 0 ok, 1 checks fail, 2 malformed,
 * 3 incomplete (wait for more data), 4 the trailer. */
static int copy_tuple(Walker *w, const unsigned char *p, size_t n, size_t *used, long long *seq,
                      Field *f, char *when, size_t wcap) {
    if (n < 2) return 3;
    int count = (int16_t)(p[0] << 8 | p[1]);
    if (count == -1) {
        *used = 2;
        return 4;
    }
    if (count != N_FIELDS) return 2;
    size_t at = 2;
    const unsigned char *col[N_FIELDS];
    int32_t len[N_FIELDS];
    for (int i = 0; i < N_FIELDS; i++) {
        if (n - at < 4) return 3;
        len[i] = (int32_t)be32(p + at);
        at += 4;
        col[i] = p + at;
        if (len[i] > 0) {
            if (n - at < (size_t)len[i]) return 3;
            at += len[i];
        }
    }
    *used = at;
    /* CHAIN_QUERY's columns: seq bigint, three texts, created_at timestamptz, three texts */
    if (len[0] != 8 || (len[4] != 8 && len[4] != -1)) return 2;
    *seq = be64(col[0]);
    for (int i = 0; i < 7; i++)
        f[i] = len[i + 1] < 0 ? (Field){NULL, 0} : (Field){(const char *)col[i + 1], len[i + 1]};
    if (f[3].p) f[3] = (Field){when, pg_time(be64(col[4]), when, wcap)};
    return 0;
}

static PyObject *Walker_feed_copy(Walker *w, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (w->bad != Py_None || w->copy_ended) {
        PyBuffer_Release(&view);
        return PyLong_FromLong(0);
    }
    if (grow(&w->carry, &w->carry_cap, w->carry_len + view.len) < 0) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    memcpy(w->carry + w->carry_len, view.buf, view.len);
    w->carry_len += view.len;
    PyBuffer_Release(&view);
    const unsigned char *p = (const unsigned char *)w->carry, *end = p + w->carry_len;
    if (!w->copy_started) {
        if (end - p < 19) return PyLong_FromLong(0);
        if (memcmp(p, COPY_SIGNATURE, 11)) {
            PyErr_SetString(PyExc_ValueError, "not PostgreSQL binary COPY data");
            return NULL;
        }
        size_t skip = 19 + (size_t)be32(p + 15);
        if ((size_t)(end - p) < skip) return PyLong_FromLong(0);
        p += skip;
        w->copy_started = 1;
    }
    Py_ssize_t done = 0;
    int r = 0;
    long long seq = 0;
    Field f[7];
    char when[64];
    size_t used = 0;
    Py_BEGIN_ALLOW_THREADS
    while (p < end) {
        r = copy_tuple(w, p, end - p, &used, &seq, f, when, sizeof when);
        if (r == 0) r = step(w, seq, f);
        if (r) break;
        done++;
        p += used;
    }
    Py_END_ALLOW_THREADS
    if (r == 2) {
        PyErr_SetString(PyExc_ValueError, "not a ledger event in the COPY data");
        return NULL;
    }
    if (r < 0) return PyErr_NoMemory();
    if (r == 1) {
        PyObject *bad = bad_tuple(PyLong_FromLongLong(seq), f);
        if (!bad) return NULL;
        Py_SETREF(w->bad, bad);
        w->carry_len = 0;
        return PyLong_FromSsize_t(done);
    }
    if (r == 4) {
        w->copy_ended = 1;
        p += used;
    }
    w->carry_len = end - p;
    memmove(w->carry, p, w->carry_len);
    return PyLong_FromSsize_t(done);
}

static PyObject *Walker_end_copy(Walker *w, PyObject *Py_UNUSED(ignored)) {
    if (w->bad == Py_None && (!w->copy_ended || w->carry_len))
        return PyErr_Format(PyExc_ValueError, "the COPY data ended early or has data after its end");
    Py_RETURN_NONE;
}

/* -- SQLite ------------------------------------------------------------------------------------ */
static PyObject *Walker_open_sqlite(Walker *w, PyObject *args) {
    const char *path, *sql;
    if (!PyArg_ParseTuple(args, "ss", &path, &sql)) return NULL;
    close_sqlite(w);
    int rc = sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(w->db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(w->db, sql, -1, &w->stmt, NULL);
    if (rc != SQLITE_OK) {
        PyErr_Format(PyExc_OSError, "cannot read %s: %s", path,
                     w->db ? sqlite3_errmsg(w->db) : sqlite3_errstr(rc));
        close_sqlite(w);
        return NULL;
    }
    Py_RETURN_NONE;
}

static Field column(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return (Field){NULL, 0};
    const char *p = (const char *)sqlite3_column_text(st, i);
    return (Field){p ? p : "", sqlite3_column_bytes(st, i)};
}

/* The row under the statement; its time as stored (`YYYY-MM-DD HH:MM:SS.ffffff`) put in the
 * hashed form (`…T…Z`) in `when`. 1 if a column has a type the chain never stores. */
static int sqlite_row(sqlite3_stmt *st, long long *seq, Field *f, char *when, size_t wcap) {
    int odd = sqlite3_column_type(st, 0) != SQLITE_INTEGER;
    *seq = sqlite3_column_int64(st, 0);
    for (int i = 0; i < 7; i++) {
        int t = sqlite3_column_type(st, i + 1); /* before column(): reading converts */
        if (t != SQLITE_NULL && t != SQLITE_TEXT) odd = 1;
        f[i] = column(st, i + 1);
    }
    Field t = f[3];
    if (t.p) {
        if ((size_t)t.n + 2 > wcap) return 1;
        memcpy(when, t.p, t.n);
        char *sp = memchr(when, ' ', t.n);
        if (sp) *sp = 'T';
        when[t.n] = 'Z';
        f[3] = (Field){when, t.n + 1};
    }
    return odd;
}

static PyObject *Walker_step_sqlite(Walker *w, PyObject *arg) {
    Py_ssize_t most = PyLong_AsSsize_t(arg);
    if (most == -1 && PyErr_Occurred()) return NULL;
    if (!w->stmt) {
        PyErr_SetString(PyExc_RuntimeError, "no SQLite chain is open");
        return NULL;
    }
    if (w->bad != Py_None) return PyLong_FromLong(0);
    Py_ssize_t done = 0;
    int rc = SQLITE_ROW, r = 0;
    long long seq = 0;
    Field f[7];
    char when[64];
    Py_BEGIN_ALLOW_THREADS
    while (done < most && (rc = sqlite3_step(w->stmt)) == SQLITE_ROW) {
        r = sqlite_row(w->stmt, &seq, f, when, sizeof when);
        if (r == 0) r = step(w, seq, f);
        if (r) break;
        done++;
    }
    Py_END_ALLOW_THREADS
    if (r < 0) return PyErr_NoMemory();
    if (r == 1) {
        PyObject *first;
        if (sqlite3_column_type(w->stmt, 0) == SQLITE_INTEGER)
            first = PyLong_FromLongLong(seq);
        else
            first = text_or_none(column(w->stmt, 0));
        PyObject *bad = first ? bad_tuple(first, f) : NULL;
        if (!bad) return NULL;
        Py_SETREF(w->bad, bad);
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return PyErr_Format(PyExc_OSError, "reading the chain: %s", sqlite3_errmsg(w->db));
    }
    return PyLong_FromSsize_t(done);
}

static PyObject *Walker_close(Walker *w, PyObject *Py_UNUSED(ignored)) {
    close_sqlite(w);
    Py_RETURN_NONE;
}

/* -- results ----------------------------------------------------------------------------------- */
static PyObject *Walker_heads(Walker *w, PyObject *Py_UNUSED(ignored)) {
    PyObject *d = PyDict_New();
    for (Py_ssize_t i = 0; d && i < w->reached; i++) {
        if (w->sizes[i] < 1) continue;
        PyObject *k = PyLong_FromLongLong(w->sizes[i]);
        PyObject *v = PyBytes_FromStringAndSize((const char *)w->heads[i], HASH_LEN);
        if (!k || !v || PyDict_SetItem(d, k, v) < 0) Py_CLEAR(d);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    return d;
}

static PyObject *Walker_absorb(Walker *w, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (w->keep || view.len % HASH_LEN) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "absorb takes 32-byte leaf hashes, into a growing tree");
        return NULL;
    }
    const unsigned char *p = view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < view.len; i += HASH_LEN) push(w, p + i);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *Walker_take_leaves(Walker *w, PyObject *Py_UNUSED(ignored)) {
    PyObject *b = PyBytes_FromStringAndSize((const char *)w->kept, w->kept_len);
    if (b) w->kept_len = 0;
    return b;
}

static PyObject *Walker_root(Walker *w, PyObject *Py_UNUSED(ignored)) {
    unsigned char out[HASH_LEN];
    head(w, out);
    return PyBytes_FromStringAndSize((const char *)out, HASH_LEN);
}

static PyObject *Walker_get_expected(Walker *w, void *c) { return PyLong_FromLongLong(w->expected); }
static PyObject *Walker_get_size(Walker *w, void *c) { return PyLong_FromLongLong(w->size); }
static PyObject *Walker_get_prev(Walker *w, void *c) {
    return PyUnicode_FromStringAndSize(w->prev, HEX_LEN);
}
static PyObject *Walker_get_bad(Walker *w, void *c) { return Py_NewRef(w->bad); }

static PyMethodDef Walker_methods[] = {
    {"feed_rows", (PyCFunction)Walker_feed_rows, METH_O,
     "Check rows (seq, invoice_id, seller_id, type, time, payload, prev_hash, hash), the time "
     "in hashed form; the number that checked."},
    {"feed_copy", (PyCFunction)Walker_feed_copy, METH_O,
     "Check the events in a chunk of PostgreSQL binary COPY output; the number that checked."},
    {"end_copy", (PyCFunction)Walker_end_copy, METH_NOARGS, "Raise if the COPY data ended early."},
    {"open_sqlite", (PyCFunction)Walker_open_sqlite, METH_VARARGS,
     "Open an SQLite file and run the chain query on one snapshot."},
    {"step_sqlite", (PyCFunction)Walker_step_sqlite, METH_O,
     "Check up to N more events of the open SQLite chain; the number that checked."},
    {"close", (PyCFunction)Walker_close, METH_NOARGS, "Close the SQLite file."},
    {"heads", (PyCFunction)Walker_heads, METH_NOARGS,
     "{size: tree head} for the requested sizes the walk reached."},
    {"root", (PyCFunction)Walker_root, METH_NOARGS, "The tree head over the events so far."},
    {"absorb", (PyCFunction)Walker_absorb, METH_O,
     "Grow the tree by leaf hashes that a later segment's walk kept (take_leaves)."},
    {"take_leaves", (PyCFunction)Walker_take_leaves, METH_NOARGS,
     "The leaf hashes this walk kept (keep_leaves=True), as bytes; forgets them."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Walker_getset[] = {
    {"expected", (getter)Walker_get_expected, NULL, "The sequence number the next event must have.", NULL},
    {"size", (getter)Walker_get_size, NULL, "Events checked.", NULL},
    {"prev", (getter)Walker_get_prev, NULL, "The last checked event's hash.", NULL},
    {"bad", (getter)Walker_get_bad, NULL, "The first event that did not check, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WalkerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kaipiao.ledger._walk.Walker",
    .tp_basicsize = sizeof(Walker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A walk over the ledger chain from its first event.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Walker_init,
    .tp_dealloc = (destructor)Walker_dealloc,
    .tp_methods = Walker_methods,
    .tp_getset = Walker_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kaipiao.ledger._walk", "The ledger verification loop in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__walk(void) {
    sha3_256 = EVP_MD_fetch(NULL, "SHA3-256", NULL);
    if (!sha3_256) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA3-256");
        return NULL;
    }
    if (PyType_Ready(&WalkerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Walker", (PyObject *)&WalkerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
