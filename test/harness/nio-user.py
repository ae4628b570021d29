#!/usr/bin/python3
# An E2EE Matrix user for tests, independent of matrix-js-sdk: matrix-nio with libolm (Debian's
# python3-matrix-nio and python3-olm), driven over stdio with JSON lines. Run with /usr/bin/python3 (Debian's
# packages are not on other interpreters' paths).
#
# Request:  {"id": 1, "cmd": "login", "args": {...}}
# Answer:   {"id": 1, "ok": true, "result": {...}}  or  {"id": 1, "ok": false, "error": "..."}
# Requests run concurrently (a wait-for-message does not block a send); answers carry the request's id.
# stdout carries only answers; nio's and our logs go to stderr.
#
# Commands (args):
#   login            {homeserver, user, password, device_name?, timeout_ms?}  -> {user_id, device_id}
#                    logs in on a new device, uploads its keys, starts syncing, returns after the first sync
#   wait-for-invite  {room_id?, timeout_ms?}                                   -> {room_id, inviter}
#   join             {room_id, timeout_ms?}                                    -> {room_id, encrypted}
#   create-dm        {user_id, timeout_ms?}                                    -> {room_id}
#                    an encrypted direct chat (Megolm from the first event), the way Element starts one
#   send             {room_id, body, msgtype?, expect_encrypted? (default true)} -> {event_id}
#                    encrypts in an encrypted room, sharing the room key with unverified devices too
#   wait-for-message {room_id, body?, sender?, timeout_ms?}                    -> message (see below)
#   messages         {room_id?}                                                -> {messages: [message]}
#   decryption-failures {}                                                     -> {failures: [{room_id, event_id, sender, session_id, reason}]}
#   trust-all-devices {user_ids?}                                              -> {trusted: ["@u:hs DEVICE", ...]}
#   stop             {}                                                        -> {} (then exits)
# message = {room_id, event_id, sender, type, content, encrypted, verified}; for a decrypted event `content` is
# the clear content and `verified` is nio's view of the sending device (trusted locally).
import asyncio
import json
import shutil
import sys
import tempfile
import time
import traceback

from nio import (AsyncClient, AsyncClientConfig, InviteMemberEvent, JoinError, LoginResponse, MegolmEvent,
                 RoomCreateResponse, RoomMessage, RoomPreset, RoomSendResponse, SyncResponse)
from nio.exceptions import EncryptionError


def log(*parts):
    print(time.strftime("%H:%M:%S"), "nio-user:", *parts, file=sys.stderr, flush=True)


class NioUser:
    def __init__(self):
        self.client = None
        self.store_dir = tempfile.mkdtemp(prefix="motr-nio-")
        self.sync_task = None
        self.first_sync = asyncio.Event()
        self.changed = asyncio.Condition()
        self.messages = []  # readable events, in arrival order
        self.failures = {}  # event id -> (room_id, MegolmEvent, reason), retried after every sync
        self.seen_ids = set()

    # --- state updates -------------------------------------------------------------------------------------

    async def notify(self):
        async with self.changed:
            self.changed.notify_all()

    def record(self, room_id, event):
        if event.event_id in self.seen_ids:
            return
        self.seen_ids.add(event.event_id)
        src = event.source or {}
        self.messages.append({
            "room_id": room_id,
            "event_id": event.event_id,
            "sender": event.sender,
            "type": src.get("type", "m.room.message"),
            "content": src.get("content", {}),
            "encrypted": bool(getattr(event, "decrypted", False)),
            "verified": bool(getattr(event, "verified", False)),
        })

    async def on_event(self, room, event):
        if isinstance(event, MegolmEvent):
            # Not decryptable when it arrived (the key may come in a later sync): keep it and retry.
            self.failures[event.event_id] = (room.room_id, event, "no session when received")
        else:
            self.record(room.room_id, event)
        await self.notify()

    async def on_invite(self, _room, _event):
        await self.notify()

    async def on_sync(self, _response):
        for event_id, (room_id, event, _reason) in list(self.failures.items()):
            try:
                clear = self.client.decrypt_event(event)
            except EncryptionError as e:
                self.failures[event_id] = (room_id, event, str(e))
                continue
            del self.failures[event_id]
            if isinstance(clear, RoomMessage):
                self.record(room_id, clear)
        self.first_sync.set()
        await self.notify()

    async def wait_until(self, check, timeout_ms, what):
        deadline = time.monotonic() + timeout_ms / 1000

        async def loop():
            async with self.changed:
                while True:
                    value = check()
                    if value is not None:
                        return value
                    # Also re-check periodically: some state (rooms) changes without an event callback.
                    try:
                        await asyncio.wait_for(self.changed.wait(), 0.25)
                    except asyncio.TimeoutError:
                        pass

        try:
            return await asyncio.wait_for(loop(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            fails = [f"{i}: {r}" for i, (_, _, r) in self.failures.items()]
            raise TimeoutError(f"timed out after {timeout_ms} ms: {what}" +
                               (f"; undecryptable: {fails}" if fails else ""))

    # --- commands ------------------------------------------------------------------------------------------

    async def cmd_login(self, homeserver, user, password, device_name="nio-test", timeout_ms=60000):
        if self.client:
            raise RuntimeError("already logged in")
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
        self.client = AsyncClient(homeserver, user, store_path=self.store_dir, config=config)
        r = await self.client.login(password, device_name=device_name)
        if not isinstance(r, LoginResponse):
            raise RuntimeError(f"login {user}: {r}")
        self.client.add_event_callback(self.on_event, (RoomMessage, MegolmEvent))
        self.client.add_event_callback(self.on_invite, InviteMemberEvent)
        self.client.add_response_callback(self.on_sync, SyncResponse)
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        self.sync_task = asyncio.ensure_future(self.client.sync_forever(timeout=10000, full_state=True))
        try:
            await asyncio.wait_for(self.first_sync.wait(), timeout_ms / 1000)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no first sync within {timeout_ms} ms")
        return {"user_id": self.client.user_id, "device_id": self.client.device_id}

    async def cmd_wait_for_invite(self, room_id=None, timeout_ms=30000):
        def check():
            for rid, room in self.client.invited_rooms.items():
                if room_id is None or rid == room_id:
                    return {"room_id": rid, "inviter": room.inviter}
            return None
        return await self.wait_until(check, timeout_ms, f"invite {room_id or ''}")

    async def cmd_join(self, room_id, timeout_ms=30000):
        r = await self.client.join(room_id)
        if isinstance(r, JoinError):
            raise RuntimeError(f"join {room_id}: {r.message}")
        joined = r.room_id
        room = await self.wait_until(lambda: self.client.rooms.get(joined), timeout_ms, f"joined {joined}")
        return {"room_id": joined, "encrypted": room.encrypted}

    async def cmd_create_dm(self, user_id, timeout_ms=30000):
        r = await self.client.room_create(
            is_direct=True, preset=RoomPreset.trusted_private_chat, invite=[user_id],
            initial_state=[{"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        if not isinstance(r, RoomCreateResponse):
            raise RuntimeError(f"create DM with {user_id}: {r}")
        created = r.room_id
        def check():
            room = self.client.rooms.get(created)
            return True if room is not None and room.encrypted else None
        await self.wait_until(check, timeout_ms, f"encrypted room {created} in sync")
        return {"room_id": created}

    async def cmd_send(self, room_id, body, msgtype="m.text", expect_encrypted=True):
        room = self.client.rooms.get(room_id)
        if room is None:
            raise RuntimeError(f"not in room {room_id}")
        if room.encrypted != expect_encrypted:
            # nio sends in the clear to a room it does not know as encrypted: refuse rather than leak.
            raise RuntimeError(f"room {room_id} is {'' if room.encrypted else 'not '}encrypted")
        r = await self.client.room_send(room_id, "m.room.message", {"msgtype": msgtype, "body": body},
                                        ignore_unverified_devices=True)
        if not isinstance(r, RoomSendResponse):
            raise RuntimeError(f"send to {room_id}: {r}")
        return {"event_id": r.event_id}

    async def cmd_wait_for_message(self, room_id, body=None, sender=None, timeout_ms=30000):
        def check():
            for m in self.messages:
                if m["room_id"] != room_id or m["type"] != "m.room.message":
                    continue
                if body is not None and m["content"].get("body") != body:
                    continue
                if sender is not None and m["sender"] != sender:
                    continue
                return m
            return None
        what = f"message in {room_id}" + (f" {json.dumps(body[:80])}" if body is not None else "")
        return await self.wait_until(check, timeout_ms, what)

    async def cmd_messages(self, room_id=None):
        return {"messages": [m for m in self.messages if room_id is None or m["room_id"] == room_id]}

    async def cmd_decryption_failures(self):
        return {"failures": [{"room_id": rid, "event_id": eid, "sender": ev.sender, "session_id": ev.session_id,
                              "reason": reason} for eid, (rid, ev, reason) in self.failures.items()]}

    async def cmd_trust_all_devices(self, user_ids=None):
        trusted = []
        for user_id in (user_ids or list(self.client.device_store.users)):
            for device in self.client.device_store.active_user_devices(user_id):
                if user_id == self.client.user_id and device.id == self.client.device_id:
                    continue
                if not device.verified:
                    self.client.verify_device(device)
                trusted.append(f"{user_id} {device.id}")
        return {"trusted": trusted}

    async def cmd_stop(self):
        await self.close()
        return {}

    async def close(self):
        if self.sync_task:
            self.sync_task.cancel()
            try:
                await self.sync_task
            except BaseException:
                pass
            self.sync_task = None
        if self.client:
            await self.client.close()
        shutil.rmtree(self.store_dir, ignore_errors=True)


async def main():
    user = NioUser()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stopping = asyncio.Event()
    tasks = set()

    def answer(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    async def handle(req):
        rid = req.get("id")
        cmd = str(req.get("cmd", ""))
        try:
            fn = getattr(user, "cmd_" + cmd.replace("-", "_"), None)
            if fn is None:
                raise ValueError(f"unknown command {cmd!r}")
            result = await fn(**(req.get("args") or {}))
            answer({"id": rid, "ok": True, "result": result})
        except Exception as e:  # every request gets an answer
            log(f"{cmd} failed:", traceback.format_exc())
            answer({"id": rid, "ok": False, "error": f"{type(e).__name__}: {e}"})
        if cmd == "stop":
            stopping.set()

    async def read_loop():
        while True:
            line = await reader.readline()
            if not line:
                return
            try:
                req = json.loads(line)
            except json.JSONDecodeError as e:
                answer({"id": None, "ok": False, "error": f"bad JSON: {e}"})
                continue
            t = asyncio.ensure_future(handle(req))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    reading = asyncio.ensure_future(read_loop())
    await asyncio.wait([reading, asyncio.ensure_future(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
    # stdin closed (the test process went away) or stop: stop syncing and drop the store.
    for t in list(tasks):
        if not t.done():
            t.cancel()
    await user.close()


if __name__ == "__main__":
    asyncio.run(main())
