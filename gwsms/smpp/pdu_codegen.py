# -*- test-case-name: tests.test_smpp_pdu -*-
"""
Code generation for the SMPP PDU codec (L{gwsms.smpp.pdu}).

Turns one command's mandatory field table (L{gwsms.smpp.constants.BODY_FIELDS})
into a specialised decoder and encoder function, compiled once at import.
A table interpreter costs two to three times more per PDU.  The generated
source contains only field names and sizes from the tables, never data from
a peer.  The functions reference helpers (C{NUL}, C{HEADER_PACK},
C{decode_dests}, ...) that the caller puts in C{namespace}.
"""

import struct

from gwsms.smpp.constants import CSTR as _CSTR
from gwsms.smpp.constants import DESTS as _DESTS
from gwsms.smpp.constants import INT1 as _INT1
from gwsms.smpp.constants import INT2 as _INT2
from gwsms.smpp.constants import INT4 as _INT4
from gwsms.smpp.constants import SM as _SM

__all__ = ["compile_decoder", "compile_encoder"]


def _group(fields):
    """
    Split a field table into steps: ("ints", [names], fmt), ("cstr", name,
    size), ("sm", name), ("list", name, kind).  An sm_length octet joins
    the integer run before it.
    """
    steps = []
    for field in fields:
        name, kind = field[0], field[1]
        if kind in (_INT1, _INT2, _INT4) or kind == _SM:
            if not steps or steps[-1][0] != "ints":
                steps.append(("ints", [], ""))
            _, names, fmt = steps[-1]
            names.append(name if kind != _SM else None)
            steps[-1] = ("ints", names, fmt + (kind if kind != _SM else "B"))
            if kind == _SM:
                steps.append(("sm", name))
        elif kind == _CSTR:
            steps.append(("cstr", name, field[2]))
        else:
            steps.append(("list", name, kind))
    return steps


def compile_decoder(command, fields, namespace):
    """
    Generate the fast C{decode_x(data, command_id, status, sequence,
    length) -> Pdu} for one command (C{data} is the whole PDU, header
    included, C{length} its size).  It checks every bound but raises bare
    C{ValueError} / C{IndexError} / C{struct.error}; L{gwsms.smpp.pdu.decode}
    then decodes again with L{gwsms.smpp.pdu._decode_checked} to report the
    precise error.  Integers are read at a constant offset from the last
    C-Octet string (all mandatory integers of SMPP 3.4 bodies are single
    octets, read by index).  C{namespace} provides C{new_pdu} (a
    C{Pdu.__new__} without arguments), C{decode_tlvs}, C{decode_dests} and
    C{decode_unsuccess}.
    """
    lines = ["def decode_%s(data, cid, status, seq, length):" % (command,)]
    if any(f[1] == _CSTR for f in fields):
        # One latin-1 decode of the whole PDU; C-strings are then str slices.
        lines.append("    text = data.decode('latin-1')")
    result = []
    base, offset = "16", 0

    def at():
        return "%s + %d" % (base, offset) if offset else base

    for index, field in enumerate(fields):
        name, kind = field[0], field[1]
        var = "v%d" % (index,)
        if kind == _INT1:
            lines.append("    %s = data[%s]" % (var, at()))
            offset += 1
        elif kind in (_INT2, _INT4):
            namespace["S_" + var] = struct.Struct("!" + kind)
            lines.append("    %s, = S_%s.unpack_from(data, %s)" % (var, var, at()))
            offset += struct.calcsize("!" + kind)
        elif kind == _CSTR:
            lines.append("    start = %s" % (at(),))
            lines.append("    end = text.index('\\0', start, start + %d)" % (field[2],))
            lines.append("    %s = text[start:end]" % (var,))
            base, offset = "end", 1
        elif kind == _SM:
            lines.append("    n = data[%s]" % (at(),))
            lines.append("    pos = %s + %d" % (base, offset + 1))
            lines.append("    if n > 254 or pos + n > length: raise ValueError")
            lines.append("    %s = data[pos:pos + n]" % (var,))
            lines.append("    pos += n")
            base, offset = "pos", 0
        else:
            func = "decode_dests" if kind == _DESTS else "decode_unsuccess"
            lines.append("    %s, pos = %s(data, %s)" % (var, func, at()))
            base, offset = "pos", 0
        result.append((name, var))
    lines.append("    pdu = new_pdu()")
    lines.append("    pdu.command_id = cid")
    lines.append("    pdu.command_status = status")
    lines.append("    pdu.sequence_number = seq")
    lines.append("    pdu.params = {%s}" % (", ".join("%r: %s" % pair for pair in result),))
    end = at()
    lines.append("    pdu.tlvs = {} if %s == length else decode_tlvs(data, %s, length)" % (end, end))
    lines.append("    return pdu")
    exec("\n".join(lines), namespace)
    return namespace["decode_%s" % (command,)]


def compile_encoder(command, fields, namespace):
    """
    Generate C{encode_x(params, command_id, status, sequence, tail) ->
    bytes} for one command: the whole PDU, header first, C{tail} (encoded
    TLVs) last.  It raises C{KeyError} for a missing parameter and
    C{struct.error}, C{TypeError}, C{AttributeError} or
    C{UnicodeEncodeError} for values of the wrong type or range;
    L{gwsms.smpp.pdu.encode} then fills in defaults or diagnoses the field
    with L{gwsms.smpp.pdu._diagnose}.
    """
    lines = ["def encode_%s(p, cid, status, seq, tail):" % (command,)]
    parts = []
    lengths = ["len(tail)"]
    fixed = 16
    steps = _group(fields)
    sm_var = None
    for index, step in enumerate(steps):
        if step[0] == "sm":
            sm_var = "v%d" % (index,)
            lines.append("    %s = p[%r]" % (sm_var, step[1]))
            lines.append(
                "    if %s.__class__ is not bytes: %s = as_octets(%s, %r)"
                % (sm_var, sm_var, sm_var, step[1])
            )
            lines.append("    if len(%s) > 254: too_long(%r, %s)" % (sm_var, step[1], sm_var))
    for index, step in enumerate(steps):
        var = "v%d" % (index,)
        if step[0] == "ints":
            _, names, fmt = step
            args = ["p[%r]" % (name,) if name else "len(%s)" % (sm_var,) for name in names]
            namespace["S_" + var] = struct.Struct("!" + fmt)
            parts.append("S_%s.pack(%s)" % (var, ", ".join(args)))
            fixed += struct.calcsize("!" + fmt)
        elif step[0] == "cstr":
            _, name, size = step
            lines.append("    %s = p[%r].encode('latin-1')" % (var, name))
            lines.append(
                "    if len(%s) >= %d or NUL in %s: cstr_bytes(p[%r], %r, %d)"
                % (var, size, var, name, name, size)
            )
            parts.append(var)
            parts.append("NUL")
            lengths.append("len(%s)" % (var,))
            fixed += 1
        elif step[0] == "sm":
            parts.append(var)
            lengths.append("len(%s)" % (var,))
        else:
            _, name, kind = step
            func = "encode_dests" if kind == _DESTS else "encode_unsuccess"
            lines.append("    %s = %s(p[%r])" % (var, func, name))
            parts.append(var)
            lengths.append("len(%s)" % (var,))
    lines.append(
        "    return b''.join((HEADER_PACK(%d + %s, cid, status, seq), %s))"
        % (fixed, " + ".join(lengths), ", ".join(parts + ["tail"]))
    )
    exec("\n".join(lines), namespace)
    return namespace["encode_%s" % (command,)]
