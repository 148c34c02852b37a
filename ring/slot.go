package ring

import (
	"strings"
	"unsafe"
)

// crc16Table is the table of CRC-16/XMODEM (polynomial 0x1021, initial value
// 0, no reflection), the CRC Redis Cluster hashes keys with. It is filled
// once, when the package is initialised, and only read after that.
var crc16Table = crc16TableOf()

func crc16TableOf() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}

// CRC16 returns the CRC-16/XMODEM checksum of s (CRC16("123456789") is
// 0x31c3), the checksum Redis Cluster derives slots from.
func CRC16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crc16Table[byte(c>>8)^s[i]]
	}
	return c
}

// HashTag returns the part of key that decides its slot, as Redis Cluster
// defines it: the bytes between the first '{' and the first '}' after it,
// when there are any; otherwise the whole key. "{user1000}.following" and
// "{user1000}.followers" share the tag "user1000"; "{}x" and "x{" have none.
func HashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// Slot returns key's Redis Cluster hash slot, CRC16(HashTag(key)) modulo
// 16384, the answer of CLUSTER KEYSLOT. It does not allocate.
func Slot(key string) int { return int(CRC16(HashTag(key)) & (Slots - 1)) }

// SlotOf is Slot of a key held in a byte slice (a request's argument),
// without copying it.
func SlotOf(key []byte) int { return Slot(unsafe.String(unsafe.SliceData(key), len(key))) }
