// MedSynth Studio: send files to the server in pieces (each written to disk there as it arrives).
// medsynth_upload(files, triggers) -> {status, errorMsg}.  triggers: {begin, chunk, end, abort}
// begin([{name, size}]) answers {id, chunk} or {error}; chunk(id, index, offset, File) answers true or {error};
// end(id) loads the files.  Nothing is sent when begin refuses (unsupported name, too large).
window.medsynth_upload = async function medsynth_upload(files, triggers) {
  const list = Array.from(files || []);
  if (!list.length) {
    return { status: false, errorMsg: null };
  }
  let id = null;
  try {
    const meta = list.map((f) => ({ name: f.name, size: f.size }));
    const started = await trame.trigger(triggers.begin, [meta]);
    if (!started || started.error) {
      return { status: false, errorMsg: (started && started.error) || 'upload refused' };
    }
    id = started.id;
    const step = started.chunk;
    for (let index = 0; index < list.length; index++) {
      const file = list[index];
      for (let offset = 0; offset < file.size; offset += step) {
        const piece = new File([file.slice(offset, Math.min(offset + step, file.size))], file.name);
        const ok = await trame.trigger(triggers.chunk, [id, index, offset, piece]);
        if (ok !== true) {
          return { status: false, errorMsg: (ok && ok.error) || 'upload refused' };
        }
      }
    }
    await trame.trigger(triggers.end, [id]);
    return { status: true, errorMsg: null };
  } catch (error) {
    if (id !== null) {
      try { await trame.trigger(triggers.abort, [id]); } catch (e) { /* connection lost */ }
    }
    return { status: false, errorMsg: String(error) };
  }
};
