-- Wireshark dissector for what Tailscale's peer relay carries inside
-- Geneve: protocol type 0x7A11 (a disco message: magic, sender key, nonce,
-- NaCl box) and 0x7A12 (a WireGuard message: type, indexes, counter).
--
-- Wireshark's own Geneve dissector decodes the 8-byte header and hands the
-- rest to the "ethertype" table under the protocol type; this script
-- registers there. Geneve is only decoded on UDP port 6081 by default, so
-- the script also registers it on the relay port (preference
-- "peerrelay.port", 7777 by default); for another port:
--
--   tshark -X lua_script:peerrelay.lua -d udp.port==40000,geneve -r x.pcap
--   wireshark -X lua_script:peerrelay.lua x.pcap   (or copy it into
--   ~/.local/lib/wireshark/plugins/)
--
-- Display filters: peerrelay_disco, peerrelay_disco.sender_key == ...,
-- peerrelay_wg.type == 4, peerrelay_wg.counter > 100.

local disco = Proto("peerrelay_disco", "Tailscale peer relay disco message")
local wg = Proto("peerrelay_wg", "Tailscale peer relay WireGuard message")

local MAGIC_HEX = "5453F09F92AC"  -- "TS" U+1F4AC
local MAGIC_LEN = 6
local NONCE_LEN = 24
local KEY_LEN = 32
local BOX_OVERHEAD = 16  -- Poly1305 tag

local df = {
  magic = ProtoField.bytes("peerrelay_disco.magic", "Magic"),
  sender_key = ProtoField.bytes("peerrelay_disco.sender_key", "Sender disco key"),
  nonce = ProtoField.bytes("peerrelay_disco.nonce", "Nonce"),
  box_len = ProtoField.uint32("peerrelay_disco.box_len", "Box length"),
  plaintext_len = ProtoField.uint32("peerrelay_disco.plaintext_len",
                                    "Plaintext length"),
  handshake = ProtoField.bool("peerrelay_disco.handshake",
                              "Handshake with the relay (Geneve O bit)"),
  box = ProtoField.bytes("peerrelay_disco.box", "Sealed box"),
}
disco.fields = df

local wg_types = {
  [1] = "Handshake initiation",
  [2] = "Handshake response",
  [3] = "Cookie reply",
  [4] = "Transport data",
}
local wf = {
  type = ProtoField.uint8("peerrelay_wg.type", "Message type", base.DEC, wg_types),
  reserved = ProtoField.bytes("peerrelay_wg.reserved", "Reserved"),
  sender = ProtoField.uint32("peerrelay_wg.sender", "Sender index"),
  receiver = ProtoField.uint32("peerrelay_wg.receiver", "Receiver index"),
  counter = ProtoField.uint64("peerrelay_wg.counter", "Counter"),
  data_len = ProtoField.uint32("peerrelay_wg.data_len", "Encrypted data length"),
}
wg.fields = wf

local ef = {
  not_disco = ProtoExpert.new("peerrelay_disco.not_disco", "Not a disco envelope",
                              expert.group.MALFORMED, expert.severity.WARN),
  short_wg = ProtoExpert.new("peerrelay_wg.short", "Too short for WireGuard",
                             expert.group.MALFORMED, expert.severity.WARN),
}
disco.experts = { ef.not_disco }
wg.experts = { ef.short_wg }

local oam_field = Field.new("geneve.flags.oam")

disco.prefs.port = Pref.uint("Relay UDP port", 7777,
                             "Decode Geneve on this UDP port (the relay's)")

function disco.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  local t = tree:add(disco, tvb(), "Peer relay disco")
  pinfo.cols.protocol = "PR-Disco"
  local oam = oam_field()
  if oam ~= nil then
    t:add(df.handshake, oam.value)
  end
  if len < MAGIC_LEN + KEY_LEN + NONCE_LEN or
     tvb(0, MAGIC_LEN):bytes():tohex():upper() ~= MAGIC_HEX then
    t:add_proto_expert_info(ef.not_disco)
    pinfo.cols.info:set("Not a disco envelope")
    return len
  end
  t:add(df.magic, tvb(0, 6))
  t:add(df.sender_key, tvb(6, KEY_LEN))
  t:add(df.nonce, tvb(6 + KEY_LEN, NONCE_LEN))
  local box_at = 6 + KEY_LEN + NONCE_LEN
  local box_len = len - box_at
  t:add(df.box_len, box_len)
  if box_len >= BOX_OVERHEAD then
    t:add(df.plaintext_len, box_len - BOX_OVERHEAD)
  end
  if box_len > 0 then t:add(df.box, tvb(box_at, box_len)) end
  pinfo.cols.info:set(string.format("Disco%s from %s, box %d",
                                    (oam ~= nil and oam.value) and " handshake" or "",
                                    tvb(6, 8):bytes():tohex():lower(), box_len))
  return len
end

function wg.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  local t = tree:add(wg, tvb(), "Peer relay WireGuard")
  pinfo.cols.protocol = "PR-WG"
  if len < 4 then
    t:add_proto_expert_info(ef.short_wg)
    return len
  end
  local typ = tvb(0, 1):uint()
  t:add(wf.type, tvb(0, 1))
  t:add(wf.reserved, tvb(1, 3))
  local info = wg_types[typ] or string.format("type %d", typ)
  if typ == 4 and len >= 16 then
    t:add_le(wf.receiver, tvb(4, 4))
    t:add_le(wf.counter, tvb(8, 8))
    t:add(wf.data_len, len - 16)
    info = string.format("%s, receiver %d, counter %s", info,
                         tvb(4, 4):le_uint(), tostring(tvb(8, 8):le_uint64()))
  elseif (typ == 1 or typ == 2) and len >= 8 then
    t:add_le(wf.sender, tvb(4, 4))
    if typ == 2 and len >= 12 then t:add_le(wf.receiver, tvb(8, 4)) end
  elseif typ == 3 and len >= 8 then
    t:add_le(wf.receiver, tvb(4, 4))
  end
  pinfo.cols.info:set("WireGuard " .. info)
  return len
end

local ethertype = DissectorTable.get("ethertype")
ethertype:add(0x7A11, disco)
ethertype:add(0x7A12, wg)

-- Wireshark 4.0 registers Geneve under no dissector name: take its
-- handle from its own port, 6081.
local udp = DissectorTable.get("udp.port")
local geneve = udp:get_dissector(6081)
local registered_port = nil
local function register_port()
  if geneve == nil then return end
  if registered_port ~= nil then udp:remove(registered_port, geneve) end
  registered_port = disco.prefs.port
  if registered_port ~= 0 then udp:add(registered_port, geneve) end
end
disco.prefs_changed = register_port
register_port()
