//! Where an archived document's bytes are, and reading them.
//!
//! Since format 2 a document's bytes are stored by arrival ([`Arrivals`], keyed by arrival
//! sequence, then id) and its record names the arrival; documents stored before are in
//! [`Objects`], content-addressed. [`read`] finds one document either way.
//!
//! [`read_in_order`] reads the members of a sealed tree, which sealing lists in arrival order:
//! one scan of [`Arrivals`] from where the first of them arrived, taking each next row when it
//! is the next member, and a point read (through the member's record) for any member that is
//! not there: a document stored before format 2, one whose arrival fell between other trees'
//! (ingests running side by side commit their arrivals out of order), or damage. Reading a
//! tree's documents by their ids instead was an index search and a read of its own for each
//! (they were in blob files, keyed by hash): `cargo bench --bench verify_archive` measured
//! the same 5 KiB documents read at 1.3 GB/s that way and at 3.7 GB/s by a scan.
//!
//! Since format 3 a document's validation record and signature timestamp are stored by
//! arrival too ([`ArrivalRecords`]), and [`records_in_order`] reads them for a tree's members
//! the same way, for re-checking their signatures; [`side_token`] finds one document's
//! timestamp either way.

use hozon_storage::{Codec, Snapshot, Table, View};

use crate::model::{
    parse_id, ArrivalKey, ArrivalRecord, ArrivalRecords, Arrivals, DocId, DocRecord, Json, Objects,
    Records,
};
use crate::ArchiveError;

/// Where a document's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// In [`Arrivals`], under this key.
    Arrival(ArrivalKey),
    /// In [`Objects`], under the document's id: stored before format 2, or a document
    /// without a record (whose arrival nothing names).
    Object(DocId),
}

/// Where the bytes of document `id` are stored: its record names its arrival.
pub fn location<V: View>(view: &V, id: &DocId) -> Result<Location, ArchiveError> {
    let arrival = view.read::<Records>(id)?.and_then(|Json(r)| r.arrival);
    Ok(match arrival {
        Some(seq) => Location::Arrival(ArrivalKey { seq, id: *id }),
        None => Location::Object(*id),
    })
}

/// The stored bytes of document `id`, wherever they are; `None` when they are not stored.
pub fn read<V: View>(view: &V, id: &DocId) -> Result<Option<Vec<u8>>, ArchiveError> {
    Ok(match location(view, id)? {
        Location::Arrival(key) => view.read::<Arrivals>(&key)?,
        Location::Object(id) => view.read::<Objects>(&id)?,
    })
}

/// Members looked at for an arrival to start the scan from before giving the scan up (a tree
/// of documents stored before format 2 has none).
const SEED_TRIES: usize = 4;

/// How [`scan_in_order`] found one member.
enum Found<'r> {
    /// The row under its arrival key, lent from the store's buffers.
    Row(&'r [u8]),
    /// No row under its arrival key: its record (if any), and where that says its bytes are.
    Elsewhere(Option<Box<DocRecord>>, Location),
}

/// Shows `visit` the row of table `T` (keyed by arrival, as [`Arrivals`] and
/// [`ArrivalRecords`] are) of each of the documents `ids`, in that order: read by one cursor
/// where they are stored in that order, as a sealed tree's members are, and looked up
/// through the member's record for each one that is not.
fn scan_in_order<T: Table<Key = ArrivalKey>>(
    snap: &Snapshot<'_>,
    ids: &[DocId],
    mut visit: impl FnMut(usize, Result<Found<'_>, ArchiveError>),
) {
    let mut cursor = snap.cursor::<T>();
    // The scan starts as far before the first member with an arrival as that member is into
    // `ids`: where the first member arrived when they arrived one after another.
    let mut positioned = false;
    for (j, id) in ids.iter().take(SEED_TRIES).enumerate() {
        match location(snap, id) {
            Ok(Location::Arrival(key)) => {
                cursor.seek(&ArrivalKey {
                    seq: key.seq.saturating_sub(j as u64),
                    id: [0; 32],
                });
                positioned = true;
                break;
            }
            Ok(Location::Object(_)) => {}
            // Reported below, with the member it belongs to.
            Err(_) => break,
        }
    }
    for (i, id) in ids.iter().enumerate() {
        // The cursor's row, when it is this member.
        if positioned {
            match cursor.row() {
                Ok(Some((key, bytes))) if key.id == *id => {
                    visit(i, Ok(Found::Row(bytes)));
                    cursor.next();
                    continue;
                }
                Ok(_) => {}
                // A row that cannot be read: the lookup below says whose it is.
                Err(_) => positioned = false,
            }
        }
        // Otherwise where its record says; the scan goes on from there.
        let record = match snap.read::<Records>(id) {
            Ok(r) => r.map(|Json(r)| Box::new(r)),
            Err(e) => {
                visit(i, Err(e.into()));
                continue;
            }
        };
        let Some(seq) = record.as_ref().and_then(|r| r.arrival) else {
            visit(i, Ok(Found::Elsewhere(record, Location::Object(*id))));
            continue;
        };
        let key = ArrivalKey { seq, id: *id };
        cursor.seek(&key);
        positioned = true;
        match cursor.row() {
            Ok(Some((k, bytes))) if k == key => {
                visit(i, Ok(Found::Row(bytes)));
                cursor.next();
            }
            Ok(_) => visit(i, Ok(Found::Elsewhere(record, Location::Arrival(key)))),
            Err(e) => {
                positioned = false;
                visit(i, Err(e.into()));
            }
        }
    }
}

/// Shows `visit` the stored bytes of each of the documents `ids`, in that order, with its
/// index (`None` for one not stored): read by one cursor where they are stored in that order,
/// as a sealed tree's members are, and by a point read for each one that is not. The bytes are
/// lent from the store's buffers for the call; one document's bytes are held at a time.
pub fn read_in_order(
    snap: &Snapshot<'_>,
    ids: &[DocId],
    mut visit: impl FnMut(usize, Result<Option<&[u8]>, ArchiveError>),
) {
    scan_in_order::<Arrivals>(snap, ids, |i, found| match found {
        Ok(Found::Row(bytes)) => visit(i, Ok(Some(bytes))),
        // Stored before format 2, or a document without a record.
        Ok(Found::Elsewhere(_, Location::Object(id))) => match snap.read::<Objects>(&id) {
            Ok(bytes) => visit(i, Ok(bytes.as_deref())),
            Err(e) => visit(i, Err(e.into())),
        },
        // Its record names an arrival that holds nothing.
        Ok(Found::Elsewhere(_, Location::Arrival(_))) => visit(i, Ok(None)),
        Err(e) => visit(i, Err(e)),
    });
}

/// The validation record and signature timestamp of each of the documents `ids`, in that
/// order (`None` for one without a record): read by one scan of [`ArrivalRecords`] beside
/// the documents where they are stored in that order, and from [`Records`] and [`Objects`]
/// for a document stored before format 3. A token the record names but that is not stored
/// is `None`, for the caller to report.
pub fn records_in_order(
    snap: &Snapshot<'_>,
    ids: &[DocId],
) -> Vec<Result<Option<ArrivalRecord>, ArchiveError>> {
    let mut out = Vec::with_capacity(ids.len());
    scan_in_order::<ArrivalRecords>(snap, ids, |_, found| {
        out.push(match found {
            Ok(Found::Row(bytes)) => ArrivalRecord::decode(bytes)
                .map(Some)
                .map_err(ArchiveError::from),
            Ok(Found::Elsewhere(record, _)) => record
                .map(|r| {
                    let side_token = token_in_objects(snap, &r)?;
                    Ok(ArrivalRecord {
                        record: *r,
                        side_token,
                    })
                })
                .transpose(),
            Err(e) => Err(e),
        });
    });
    out
}

/// The signature timestamp `record` names, where stores before format 3 kept it: in
/// [`Objects`].
fn token_in_objects<V: View>(
    view: &V,
    record: &DocRecord,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    Ok(match record.side_token.as_deref().and_then(parse_id) {
        Some(oid) => view.read::<Objects>(&oid)?,
        None => None,
    })
}

/// The signature timestamp kept beside document `id`, whose record is `record`: with the
/// record under its arrival (format 3), or in [`Objects`] (before it). `None` when the record
/// names none, or names one that is not stored.
pub fn side_token<V: View>(
    view: &V,
    id: &DocId,
    record: &DocRecord,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    if record.side_token.is_none() {
        return Ok(None);
    }
    if let Some(seq) = record.arrival {
        if let Some(r) = view.read::<ArrivalRecords>(&ArrivalKey { seq, id: *id })? {
            return Ok(r.side_token);
        }
    }
    token_in_objects(view, record)
}
