package fsm

import (
	"strconv"
)

// Backups of typed values. A backup (the snapshot format of the
// cluster's level) holds every key's type; BackupItem carries a
// collection as its encoding, and a restore recreates it with rc.restore,
// an internal command like Redis's RESTORE: the key, its type, its
// encoded value and its absolute expiry.
//
//	rc.restore key type expireAt encoding -> OK

func init() {
	register(&Spec{Name: "rc.restore", Arity: 5, Flags: FlagInternal | FlagWrite | FlagDenyOOM, FirstKey: 1, LastKey: 1, Step: 1,
		Level: LevelTypes, run: rcRestore})
}

// RCRestore is rc.restore's arguments, for a BackupItem of a collection.
func RCRestore(it BackupItem) [][]byte {
	return [][]byte{[]byte("rc.restore"), it.Key, strconv.AppendUint(nil, uint64(it.Type), 10),
		strconv.AppendInt(nil, it.ExpireAt, 10), it.Value}
}

// rcRestore replaces the key with the decoded collection. An expiry
// already past deletes the key, as Redis's RESTORE with ABSTTL does.
func rcRestore(t *Tx, a [][]byte) Reply {
	k, err1 := strconv.ParseUint(string(a[2]), 10, 8)
	exp, err2 := strconv.ParseInt(string(a[3]), 10, 64)
	if err1 != nil || err2 != nil || ValueType(k) == TypeString {
		return replySyntax
	}
	o, err := decodeObject(ValueType(k), a[4])
	if err != nil {
		return cmdErr(ErrBadSnapshot, "ERR DUMP payload version or checksum are wrong: "+err.Error())
	}
	t.del(a[1])
	if exp != 0 && exp <= t.now {
		return replyOK
	}
	t.putObject(string(a[1]), o, exp)
	t.event("restore", string(a[1]))
	return replyOK
}
