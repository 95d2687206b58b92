import ssl, socket, sys
port = int(sys.argv[1]); n = int(sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for i in range(n):
    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port)))
    s.sendall(b'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    while s.recv(65536): pass
    s.close()
