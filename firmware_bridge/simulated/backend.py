"""pyusb's backend interface over a bus of virtual devices.

``usb.core.find(backend=SimulatedBackend(...))`` enumerates the plugged devices; transfers reach
each device's handlers. Errors are the ones libusb raises, with the same errno values, so a
driver's error handling is the same code on the simulated and the real bus.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import usb.backend
import usb.core

from .device import (
    ENDPOINT_IN,
    Fault,
    Setup,
    StallRequest,
    VirtualDevice,
    VirtualInterface,
)

DESCRIPTOR_DEVICE = 0x01
DESCRIPTOR_CONFIGURATION = 0x02
DESCRIPTOR_INTERFACE = 0x04
DESCRIPTOR_ENDPOINT = 0x05
CONFIGURATION_VALUE = 1
SPEED_FULL = 2  # libusb_speed: 12 Mbit/s, what these peripherals run at


@dataclass
class _Attachment:
    """One stay of a device on the bus; a replug makes a new one and old handles go stale."""

    device: VirtualDevice
    address: int


@dataclass
class _Handle:
    attachment: _Attachment
    configuration: int = 0
    claimed: set[int] | None = None


class SimulatedBackend(usb.backend.IBackend):  # type: ignore[misc] # pyusb has no types
    """A USB bus with virtual devices that tests plug, unplug and spoil."""

    def __init__(self, devices: Iterable[VirtualDevice] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._addresses = itertools.count(2)
        self._attached: dict[int, _Attachment] = {}  # id(device) → where it is now
        for device in devices:
            self.plug(device)

    # --- the test's side -------------------------------------------------------------------

    def plug(self, device: VirtualDevice) -> None:
        with self._lock:
            self._attached[id(device)] = _Attachment(device, next(self._addresses))
        device.attach(self._reenumerate)

    def unplug(self, device: VirtualDevice) -> None:
        with self._lock:
            self._attached.pop(id(device), None)
        device.attach(None)

    def is_plugged(self, device: VirtualDevice) -> bool:
        with self._lock:
            return id(device) in self._attached

    def _reenumerate(self, device: VirtualDevice) -> None:
        self.unplug(device)
        self.plug(device)

    # --- pyusb's side: enumeration and descriptors ---------------------------------------

    def enumerate_devices(self) -> Iterator[_Attachment]:
        with self._lock:
            return iter(list(self._attached.values()))

    def get_parent(self, dev: _Attachment) -> None:
        return None

    def get_device_descriptor(self, dev: _Attachment) -> SimpleNamespace:
        device = dev.device
        vendor_id, product_id = device.ids()
        strings = device.strings()
        return SimpleNamespace(
            bLength=18,
            bDescriptorType=DESCRIPTOR_DEVICE,
            bcdUSB=0x0200,
            bDeviceClass=device.device_class,
            bDeviceSubClass=0,
            bDeviceProtocol=0,
            bMaxPacketSize0=64,
            idVendor=vendor_id,
            idProduct=product_id,
            bcdDevice=device.device_release(),
            iManufacturer=1 if strings[0] else 0,
            iProduct=2 if strings[1] else 0,
            iSerialNumber=3 if strings[2] else 0,
            bNumConfigurations=1,
            address=dev.address,
            bus=1,
            port_number=dev.address - 1,
            port_numbers=(dev.address - 1,),
            speed=SPEED_FULL,
        )

    def get_configuration_descriptor(self, dev: _Attachment, config: int) -> SimpleNamespace:
        if config != 0:
            raise _usb_error(errno.ENOENT)
        interfaces = dev.device.current_interfaces()
        total = 9 + sum(9 + len(i.extra) + 7 * len(i.endpoints) for i in interfaces)
        return SimpleNamespace(
            bLength=9,
            bDescriptorType=DESCRIPTOR_CONFIGURATION,
            wTotalLength=total,
            bNumInterfaces=len(interfaces),
            bConfigurationValue=CONFIGURATION_VALUE,
            iConfiguration=0,
            bmAttributes=0x80,
            bMaxPower=50,
            extra_descriptors=[],
        )

    def get_interface_descriptor(
        self, dev: _Attachment, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        interface = self._interface(dev, intf, alt, config)
        return SimpleNamespace(
            bLength=9,
            bDescriptorType=DESCRIPTOR_INTERFACE,
            bInterfaceNumber=interface.number,
            bAlternateSetting=0,
            bNumEndpoints=len(interface.endpoints),
            bInterfaceClass=interface.interface_class,
            bInterfaceSubClass=interface.subclass,
            bInterfaceProtocol=interface.protocol,
            iInterface=0,
            extra_descriptors=list(interface.extra),
        )

    def get_endpoint_descriptor(
        self, dev: _Attachment, ep: int, intf: int, alt: int, config: int
    ) -> SimpleNamespace:
        endpoints = self._interface(dev, intf, alt, config).endpoints
        if not 0 <= ep < len(endpoints):
            raise IndexError(ep)
        endpoint = endpoints[ep]
        return SimpleNamespace(
            bLength=7,
            bDescriptorType=DESCRIPTOR_ENDPOINT,
            bEndpointAddress=endpoint.address,
            bmAttributes=endpoint.transfer_type,
            wMaxPacketSize=endpoint.max_packet_size,
            bInterval=endpoint.interval,
            bRefresh=0,
            bSynchAddress=0,
            extra_descriptors=[],
        )

    @staticmethod
    def _interface(dev: _Attachment, intf: int, alt: int, config: int) -> VirtualInterface:
        interfaces = dev.device.current_interfaces()
        if config != 0 or alt != 0 or not 0 <= intf < len(interfaces):
            raise IndexError(intf)
        return interfaces[intf]

    # --- pyusb's side: handles and transfers -----------------------------------------------

    def open_device(self, dev: _Attachment) -> _Handle:
        handle = _Handle(dev, claimed=set())
        if self._live(handle).access_denied:
            raise _usb_error(errno.EACCES)  # the device node's mode: no udev rule for us
        return handle

    def close_device(self, dev_handle: _Handle) -> None:
        dev_handle.claimed = None

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        self._live(dev_handle)
        if config_value not in {0, CONFIGURATION_VALUE}:
            raise _usb_error(errno.ENOENT)
        dev_handle.configuration = config_value

    def get_configuration(self, dev_handle: _Handle) -> int:
        self._live(dev_handle)
        return dev_handle.configuration

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        self._live(dev_handle)
        if altsetting != 0:
            raise _usb_error(errno.ENOENT)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        device = self._live(dev_handle)
        if intf not in {i.number for i in device.current_interfaces()}:
            raise _usb_error(errno.ENOENT)
        if dev_handle.claimed is not None:
            dev_handle.claimed.add(intf)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        if dev_handle.claimed is not None:
            dev_handle.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        return intf in self._live(dev_handle).kernel_bound

    def detach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        device = self._live(dev_handle)
        if intf not in device.kernel_bound:
            raise _usb_error(errno.ENODATA)  # libusb: LIBUSB_ERROR_NOT_FOUND, no driver bound
        device.kernel_bound.discard(intf)

    def attach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        device = self._live(dev_handle)
        if dev_handle.claimed and intf in dev_handle.claimed:
            raise _usb_error(errno.EBUSY)  # libusb: claimed by us, release it first
        device.kernel_bound.add(intf)

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        self._live(dev_handle)

    def reset_device(self, dev_handle: _Handle) -> None:
        device = self._live(dev_handle)
        before = (device.ids(), device.current_interfaces())
        device.reset()
        if (device.ids(), device.current_interfaces()) != before:
            # A device whose descriptors changed comes back as a new device (DFU mode switch);
            # libusb then reports the old handle's device as gone.
            self._reenumerate(device)
            raise _usb_error(errno.ENODEV)

    def bulk_write(
        self, dev_handle: _Handle, ep: int, intf: int, data: array[int], timeout: int
    ) -> int:
        return self._write(dev_handle, ep, data)

    def intr_write(
        self, dev_handle: _Handle, ep: int, intf: int, data: array[int], timeout: int
    ) -> int:
        return self._write(dev_handle, ep, data)

    def bulk_read(
        self, dev_handle: _Handle, ep: int, intf: int, buff: array[int], timeout: int
    ) -> int:
        return self._read(dev_handle, ep, buff, timeout)

    def intr_read(
        self, dev_handle: _Handle, ep: int, intf: int, buff: array[int], timeout: int
    ) -> int:
        return self._read(dev_handle, ep, buff, timeout)

    def ctrl_transfer(
        self,
        dev_handle: _Handle,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array[int],
        timeout: int,
    ) -> int:
        device = self._live(dev_handle)
        setup = Setup(bmRequestType, bRequest, wValue, wIndex, len(data))
        fault = None if setup.standard else device.take_fault()
        _raise_for(fault)
        try:
            if setup.device_to_host:
                answer = device.garbage() if fault is Fault.GARBAGE else device.control_in(setup)
                answer = answer[: len(data)]
                data[: len(answer)] = array("B", answer)
                return len(answer)
            device.handle_control_out(setup, data.tobytes())
        except StallRequest:
            raise _usb_error(errno.EPIPE) from None
        return len(data)

    # --- helpers ---------------------------------------------------------------------------

    def _live(self, dev_handle: _Handle) -> VirtualDevice:
        attachment = dev_handle.attachment
        with self._lock:
            if self._attached.get(id(attachment.device)) is not attachment:
                raise _usb_error(errno.ENODEV)
        return attachment.device

    def _write(self, dev_handle: _Handle, ep: int, data: array[int]) -> int:
        device = self._live(dev_handle)
        fault = device.take_fault()
        _raise_for(fault)
        try:
            device.handle_out(ep, data.tobytes())
        except StallRequest:
            raise _usb_error(errno.EPIPE) from None
        return len(data)

    def _read(self, dev_handle: _Handle, ep: int, buff: array[int], timeout: int) -> int:
        device = self._live(dev_handle)
        if not ep & ENDPOINT_IN:
            raise _usb_error(errno.EINVAL)
        fault = device.take_fault()
        _raise_for(fault)
        # pyusb passes 0 for "wait forever"; a simulated bus never waits that long.
        packet = device.read_in(ep, timeout / 1000 if timeout > 0 else 5.0)
        self._live(dev_handle)  # unplugged while we waited
        if packet is None:
            raise _timeout()
        if fault is Fault.GARBAGE:
            packet = device.garbage()
        if len(packet) > len(buff):
            raise _usb_error(errno.EOVERFLOW)
        buff[: len(packet)] = array("B", packet)
        return len(packet)


def _raise_for(fault: Fault | None) -> None:
    if fault is Fault.TIMEOUT:
        raise _timeout()
    if fault is Fault.STALL:
        raise _usb_error(errno.EPIPE)


def _usb_error(code: int) -> usb.core.USBError:
    """The error libusb raises for ``code``, with its errno, as pyusb's libusb1 backend does."""
    return usb.core.USBError(os.strerror(code), None, code)


def _timeout() -> usb.core.USBTimeoutError:
    return usb.core.USBTimeoutError(os.strerror(errno.ETIMEDOUT), None, errno.ETIMEDOUT)
