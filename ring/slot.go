package ring

import (
	"strings"
	"unsafe"
)

// crc16Tables are the tables of CRC-16/XMODEM (polynomial 0x1021, initial
// value 0, no reflection), the CRC Redis Cluster hashes keys with:
// crc16Tables[k][b] is the CRC of byte b followed by k zero bytes, so that
// CRC16 can take four bytes per step (slicing by four). They are filled
// once, when the package is initialised, and only read after that.
var crc16Tables = crc16TablesOf()

func crc16TablesOf() (t [4][256]uint16) {
	for i := range t[0] {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[0][i] = c
	}
	for k := 1; k < len(t); k++ {
		for i := range t[k] {
			c := t[k-1][i]
			t[k][i] = c<<8 ^ t[0][byte(c>>8)]
		}
	}
	return t
}

// CRC16 returns the CRC-16/XMODEM checksum of s (CRC16("123456789") is
// 0x31c3), the checksum Redis Cluster derives slots from. Each step takes
// four bytes: the register is XORed into the first two, and the four
// contributions (a byte followed by 3, 2, 1 and 0 zero bytes) are added.
func CRC16(s string) uint16 {
	t := &crc16Tables
	var c uint16
	for len(s) >= 4 {
		c = t[3][byte(c>>8)^s[0]] ^ t[2][byte(c)^s[1]] ^ t[1][s[2]] ^ t[0][s[3]]
		s = s[4:]
	}
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ t[0][byte(c>>8)^s[i]]
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
