#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (tiny valid and near-valid files) into
idx/ and checkpoint/ next to this script. The outputs are checked in; run
this again only to change them. Plain Python, no packages needed."""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(sub, name, data):
    os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    with open(os.path.join(HERE, sub, name), 'wb') as f:
        f.write(data)


# ---- IDX: first byte = mode (bit0 labels, bit1 name *.gz, bit2 small shape:
# images 2x3 / 3 classes), the rest is the file (see idx_fuzz.cpp).
def images(count, rows, cols, magic=0x803):
    return struct.pack('>IIII', magic, count, rows, cols) + bytes((i * 37) % 256 for i in range(count * rows * cols))


def labels(values, magic=0x801):
    return struct.pack('>II', magic, len(values)) + bytes(values)


def gz(b):
    return gzip.compress(b, mtime=0)


IMG, LAB, GZ, SMALL = 0, 1, 2, 4
put('idx', 'images_28x28', bytes([IMG]) + images(1, 28, 28))
put('idx', 'images_small', bytes([IMG | SMALL]) + images(2, 2, 3))
put('idx', 'images_empty', bytes([IMG | SMALL]) + images(0, 2, 3))
put('idx', 'labels', bytes([LAB]) + labels([0, 9, 3, 5, 1]))
put('idx', 'labels_small', bytes([LAB | SMALL]) + labels([0, 2, 1]))
put('idx', 'images_small_gz', bytes([IMG | SMALL | GZ]) + gz(images(2, 2, 3)))
put('idx', 'labels_gz', bytes([LAB | GZ]) + gz(labels([1, 2, 3])))
put('idx', 'labels_gz_unnamed', bytes([LAB]) + gz(labels([4, 5])))
put('idx', 'labels_gz_two_members', bytes([LAB | GZ]) + gz(labels([1])[:5]) + gz(labels([1])[5:]))
put('idx', 'images_truncated', bytes([IMG | SMALL]) + images(2, 2, 3)[:-1])
put('idx', 'images_trailing', bytes([IMG | SMALL]) + images(2, 2, 3) + b'\0')
put('idx', 'images_wrong_shape', bytes([IMG]) + images(1, 2, 3))
put('idx', 'images_bad_magic', bytes([IMG | SMALL]) + images(1, 2, 3, magic=0x801))
put('idx', 'labels_out_of_range', bytes([LAB | SMALL]) + labels([0, 3]))
put('idx', 'labels_huge_count', bytes([LAB]) + struct.pack('>II', 0x801, 0xffffffff) + b'\1')
put('idx', 'gz_truncated', bytes([LAB | GZ]) + gz(labels([1, 2, 3]))[:-6])
put('idx', 'gz_name_plain_data', bytes([LAB | GZ]) + labels([1]))


# ---- safetensors / checkpoints of checkpoint_fuzz.cpp's tiny model:
# w [2, 3], b [2], and optimizer.momentum.<name> for each.
def st(tensors, metadata=None, pad=True, raw_header=None):
    header, data = {}, b''
    if metadata is not None:
        header['__metadata__'] = metadata
    for name, dtype, shape, values in tensors:
        blob = struct.pack('<%df' % len(values), *values)
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(blob)]}
        data += blob
    h = (raw_header if raw_header is not None else json.dumps(header, separators=(',', ':'))).encode()
    if pad:
        h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + data


W = [0.5, -1.0, 2.0, 0.0, -0.0, 3.25]
B = [1.0, -2.0]
MODEL = [('w', 'F32', [2, 3], W), ('b', 'F32', [2], B),
         ('optimizer.momentum.w', 'F32', [2, 3], [0.1] * 6), ('optimizer.momentum.b', 'F32', [2], [0.2, 0.3])]
META = {'epoch': '1', 'format_version': '1', 'format': 'pt', 'config': '{"lr": 0.01}'}

put('checkpoint', 'valid', st(MODEL, META))
put('checkpoint', 'valid_no_metadata', st(MODEL))
put('checkpoint', 'valid_unpadded', st(MODEL, {'epoch': '2'}, pad=False))
put('checkpoint', 'shape_mismatch', st([('w', 'F32', [3, 2], W)] + MODEL[1:], META))
put('checkpoint', 'missing_tensor', st(MODEL[:3], META))
put('checkpoint', 'extra_tensor', st(MODEL + [('x', 'F32', [1], [7.0])], META))
put('checkpoint', 'other_version', st(MODEL, {'format_version': '2'}))
put('checkpoint', 'generic_scalar_and_empty', st([('s', 'F32', [], [1.0]), ('e', 'F32', [0, 4], [])]))
put('checkpoint', 'dtype_f16', st([('w', 'F16', [4], [1.0, 2.0])]))
put('checkpoint', 'truncated', st(MODEL, META)[:-3])
put('checkpoint', 'bad_json', st([], raw_header='{"w": {"dtype": "F32", '))
put('checkpoint', 'metadata_not_string', st([], raw_header='{"__metadata__": {"epoch": 1}}'))
put('checkpoint', 'overlap', st([], raw_header='{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                               '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')
    + struct.pack('<2f', 1.0, 2.0))
put('checkpoint', 'empty_object', st([]))
